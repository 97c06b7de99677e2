/* memloc unit-finetune: the single-unit check (SPEC.md section 8): train
 * only one unit's parameters on augmented views of one data point and
 * report that unit's UnitMem, and control units', before and after. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "memloc/apply.h"

static const char usage_text[] =
    "usage: memloc unit-finetune --weights F --unit TAP:INDEX --point I --data SPEC\n"
    "                            [--steps 50] [--out G.safetensors] [options]\n"
    "\n"
    "Examples:\n"
    "  memloc unit-finetune --weights runs/exp/f/model.safetensors --unit layer3_residual2:17 \\\n"
    "                       --point 4321 --data folder:cifar10.tar.gz/train@shuffle:5000 --steps 50\n"
    "  memloc unit-finetune --weights f.safetensors --unit layer2:5 --point 0 --data fmnist@0:2000 \\\n"
    "                       --eval-points 200 --k 10 --json\n"
    "\n"
    "Trains only the parameters of unit INDEX of tap TAP (its conv weight slice, conv\n"
    "bias, BN weight and BN bias; every other parameter stays bitwise the same, all\n"
    "BatchNorm layers run in eval mode) on augmented views of image I of the data,\n"
    "then reports the unit's UnitMem before and after over an evaluation set (the\n"
    "point and --eval-points - 1 others chosen with --seed, K views each). If UnitMem\n"
    "localizes memorization, the unit's UnitMem rises and the point becomes its mu_max\n"
    "point. Controls: the tap's other units (their UnitMem cannot change: same inputs,\n"
    "same parameters) and the units of every later tap.\n"
    "\n"
    "The loss is SimCLR's NT-Xent anchored on the point, on the model's output (the\n"
    "projection head when the weights file has one, else the encoder output): each\n"
    "step draws --pairs pairs of views of the point and one view each of --negatives\n"
    "other random images as negatives (NT-Xent needs negatives; other views of the\n"
    "point are never negatives of each other). Adam without weight decay.\n"
    "\n"
    "Options:\n"
    "  --weights F          encoder (safetensors; a SimCLR head is used when present)\n"
    "  --unit TAP:INDEX     the unit, e.g. layer3_residual2:17 (conv-block taps only)\n"
    "  --point I            index of the image in --data\n"
    "  --data SPEC          dataset holding the point, the negatives and the evaluation set\n"
    "  --steps N            optimizer steps [50]\n"
    "  --pairs P            pairs of views of the point per step [8]\n"
    "  --negatives M        views of other images per step [64]\n"
    "  --lr LR              Adam learning rate [1e-3]\n"
    "  --temperature T      NT-Xent temperature [0.5]\n"
    "  --eval-points N      images of the UnitMem evaluation set, the point included [100]\n"
    "  --k K                views per image for UnitMem [10]\n"
    "  --aug PRESET         views for training and UnitMem: simclr|unitmem|none [simclr]\n"
    "  --seed S             views, negatives and the evaluation set [0]\n"
    "  --fit MODE           auto|none|pad|resize [auto]\n"
    "  --channels C         auto|1|3 [auto]\n"
    "  --norm NAME          Normalize constants [half]\n"
    "  --out G.safetensors  write the fine-tuned model\n"
    "  --json               one JSON document on stdout (schema memloc.unit_finetune/1)\n"
    "  -j, --threads N      threads (0: all CPUs)\n"
    "  -q, --quiet          no progress or notes on stderr\n"
    "\n"
    "Exit status: 0 ok, 1 the loss diverged, 64 bad option (a residual tap, a unit or\n"
    "point out of range), 65 malformed data, 66 missing input.\n";

int cmd_unit_finetune(int argc, char **argv) {
    enum { O_WEIGHTS = 256, O_UNIT, O_POINT, O_DATA, O_STEPS, O_PAIRS, O_NEG, O_LR, O_TEMP, O_EVAL, O_K, O_AUG,
           O_SEED, O_FIT, O_CHANNELS, O_NORM, O_OUT, O_JSON, O_THREADS, O_DEBUG };
    static const struct option opts[] = {
        {"weights", required_argument, 0, O_WEIGHTS}, {"unit", required_argument, 0, O_UNIT},
        {"point", required_argument, 0, O_POINT},     {"data", required_argument, 0, O_DATA},
        {"steps", required_argument, 0, O_STEPS},     {"pairs", required_argument, 0, O_PAIRS},
        {"negatives", required_argument, 0, O_NEG},   {"lr", required_argument, 0, O_LR},
        {"temperature", required_argument, 0, O_TEMP}, {"eval-points", required_argument, 0, O_EVAL},
        {"k", required_argument, 0, O_K},             {"aug", required_argument, 0, O_AUG},
        {"seed", required_argument, 0, O_SEED},       {"fit", required_argument, 0, O_FIT},
        {"channels", required_argument, 0, O_CHANNELS}, {"norm", required_argument, 0, O_NORM},
        {"out", required_argument, 0, O_OUT},         {"json", no_argument, 0, O_JSON},
        {"threads", required_argument, 0, O_THREADS}, {"jobs", required_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},               {"verbose", no_argument, 0, 'v'},
        {"debug", no_argument, 0, O_DEBUG},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    static const char *const presets[] = {"none", "simclr", "unitmem", NULL};
    static const mloc_aug_preset preset_values[] = {MLOC_AUG_NONE, MLOC_AUG_SIMCLR, MLOC_AUG_UNITMEM};
    static const char *const fits[] = {"auto", "none", "pad", "resize", NULL};
    static const int fit_values[] = {MLOC_EVAL_AUTO, MLOC_FIT_NONE, MLOC_FIT_PAD, MLOC_FIT_RESIZE};
    static const char *const chans[] = {"auto", "1", "3", NULL};
    static const int chan_values[] = {MLOC_EVAL_AUTO, 1, 3};
    static const char *const norms[] = {
#define MLOC_X(id, name, m0, m1, m2, s0, s1, s2) name,
        MLOC_AUG_NORM_LIST(MLOC_X)
#undef MLOC_X
        NULL};
    const char *cmd = "unit-finetune";
    cli_common common = {.cmd = cmd};
    mloc_unit_finetune_config uc = mloc_unit_finetune_config_default();
    mloc_eval_data_options dopt = mloc_eval_data_options_default();
    const char *weights = NULL, *unit_text = NULL, *data = NULL, *out = NULL;
    long long point = -1, eval_points = 100, k = 10, iv;
    int preset = 1, norm = MLOC_AUG_NORM_HALF, json = 0, i;
    double dv;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":j:qvh", opts, NULL)) != -1) {
        switch (c) {
        case O_WEIGHTS: weights = optarg; break;
        case O_UNIT: unit_text = optarg; break;
        case O_POINT:
            if (!cli_parse_int(cmd, "--point", optarg, 0, (long long)1 << 40, &point)) return 64;
            break;
        case O_DATA: data = optarg; break;
        case O_STEPS:
            if (!cli_parse_int(cmd, "--steps", optarg, 1, 1000000, &iv)) return 64;
            uc.steps = (int)iv;
            break;
        case O_PAIRS:
            if (!cli_parse_int(cmd, "--pairs", optarg, 1, 4096, &iv)) return 64;
            uc.pairs = (int)iv;
            break;
        case O_NEG:
            if (!cli_parse_int(cmd, "--negatives", optarg, 1, 65536, &iv)) return 64;
            uc.negatives = (int)iv;
            break;
        case O_LR:
            if (!cli_parse_double(cmd, "--lr", optarg, 1e-12, 1e3, &dv)) return 64;
            uc.lr = dv;
            break;
        case O_TEMP:
            if (!cli_parse_double(cmd, "--temperature", optarg, 1e-6, 1e3, &dv)) return 64;
            uc.temperature = dv;
            break;
        case O_EVAL:
            if (!cli_parse_int(cmd, "--eval-points", optarg, 2, (long long)1 << 40, &eval_points)) return 64;
            break;
        case O_K:
            if (!cli_parse_int(cmd, "--k", optarg, 1, 10000, &k)) return 64;
            break;
        case O_AUG:
            if ((preset = cli_parse_choice(cmd, "--aug", optarg, presets)) < 0) return 64;
            break;
        case O_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (long long)1 << 62, &iv)) return 64;
            uc.seed = common.seed = (uint64_t)iv;
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
    if (!weights || !unit_text || !data || point < 0)
        return cli_usage(cmd, "--weights F, --unit TAP:INDEX, --point I and --data SPEC are required");
    char tap_name[64];
    const char *colon = strrchr(unit_text, ':');
    if (!colon || colon == unit_text || (size_t)(colon - unit_text) >= sizeof tap_name)
        return cli_usage(cmd, "--unit: expected TAP:INDEX (e.g. layer2:5), got '%s'", unit_text);
    memcpy(tap_name, unit_text, (size_t)(colon - unit_text));
    tap_name[colon - unit_text] = 0;
    long long unit;
    if (!cli_parse_int(cmd, "--unit", colon + 1, 0, 1 << 30, &unit)) return 64;

    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    int rc = 0;
    mloc_model *m = NULL;
    mloc_dataset d;
    memset(&d, 0, sizeof d);
    mloc_status st = mloc_model_open(ctx, &m, weights, -1);
    if (st != MLOC_OK) goto fail;
    const int tap = mloc_model_find_tap(m, tap_name);
    if (tap < 0) {
        char list[1024] = "";
        for (int t = 0; t < m->n_taps; t++)
            if (mloc_apply_tap_block(m, t) >= 0 || t == m->n_taps - 1)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "", m->taps[t].name);
        rc = cli_usage(cmd, "--unit: '%s' is not a tap (taps: %s)", tap_name, list);
        goto done;
    }
    st = mloc_eval_dataset_open(ctx, &d, data, m, &dopt);
    if (st != MLOC_OK) goto fail;
    if (d.prep && !common.quiet) fprintf(stderr, "memloc: unit-finetune: note: %s: %s\n", data, d.prep);
    mloc_aug_config ac = mloc_aug_config_default();
    ac.preset = preset_values[preset];
    ac.size = m->cfg.image_h;
    ac.norm = (mloc_aug_norm)norm;
    mloc_aug_pipeline aug;
    st = mloc_aug_pipeline_make(ctx, &aug, &ac);
    if (st != MLOC_OK) goto fail;
    if (!common.quiet && m->cfg.head == MLOC_HEAD_NONE)
        fprintf(stderr, "memloc: unit-finetune: note: %s has no projection head; the loss is on the encoder output\n",
                weights);
    mloc_unit_check_result r;
    st = mloc_unit_check(ctx, m, tap, (int)unit, &d, point, &aug, &aug, &uc, eval_points, (int)k, &r);
    if (st != MLOC_OK) goto fail;
    if (out) {
        char what[128];
        snprintf(what, sizeof what, "%s:%lld on point %lld, %d steps", tap_name, unit, point, uc.steps);
        const char *meta[] = {"memloc_unit_finetuned", what, NULL};
        st = mloc_model_save(ctx, m, out, -1, meta);
        if (st != MLOC_OK) goto fail;
    }
    if (json) {
        json_t *doc = json_pack(
            "{s:s, s:s, s:s, s:i, s:I, s:s, s:i, s:i, s:i, s:f, s:I, s:i, s:I,"
            " s:{s:f, s:f, s:f, s:f, s:I, s:I},"
            " s:{s:f, s:f, s:f}, s:{s:I, s:f, s:f, s:f}, s:f, s:f}",
            "schema", "memloc.unit_finetune/1", "weights", weights, "tap", tap_name, "unit", (int)unit, "point",
            (json_int_t)point, "data", data, "steps", uc.steps, "pairs", uc.pairs, "negatives", uc.negatives, "lr",
            uc.lr, "eval_points", (json_int_t)r.n_points, "k", (int)k, "seed", (json_int_t)uc.seed, "unit_result",
            "unitmem_before", r.before, "unitmem_after", r.after, "mu_point_before", r.mu_before, "mu_point_after",
            r.mu_after, "argmax_before", (json_int_t)r.argmax_before, "argmax_after", (json_int_t)r.argmax_after,
            "same_tap_others", "mean_before", r.same_tap_before, "mean_after", r.same_tap_after, "max_abs_change",
            r.same_tap_max_change, "later_taps", "units", (json_int_t)r.later_units, "mean_before", r.later_before,
            "mean_after", r.later_after, "max_abs_change", r.later_max_change, "first_loss", r.first_loss,
            "last_loss", r.last_loss);
        json_object_set_new(doc, "rises", json_boolean(r.after > r.before));
        json_object_set_new(doc, "unit_activation", json_string(r.abs ? "mean of |a| (signed taps)" : "mean of a"));
        json_object_set_new(doc, "dead_before", json_boolean(r.dead_before));
        json_object_set_new(doc, "dead_after", json_boolean(r.dead_after));
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text) puts(text);
        free(text);
        json_decref(doc);
    } else {
        printf("unit %s:%lld fine-tuned on point %lld for %d steps (mean loss of the first / last tenth %.4f -> %.4f)\n", tap_name, unit, point,
               uc.steps, r.first_loss, r.last_loss);
        printf("UnitMem over %lld points (K %lld%s):\n", (long long)r.n_points, k, r.abs ? ", of |a|: signed taps" : "");
        printf("  %-28s %10s %10s\n", "", "before", "after");
        printf("  %-28s %10.4f %10.4f  %s\n", "the unit", r.before, r.after,
               r.after > r.before ? "(rises)" : "(does not rise)");
        printf("  %-28s %10.4f %10.4f\n", "its mu on the point", r.mu_before, r.mu_after);
        printf("  %-28s %10lld %10lld%s\n", "its mu_max point", (long long)r.argmax_before, (long long)r.argmax_after,
               r.dead_after ? "  (dead: it never fires)" : r.argmax_after == point ? "  (the point)" : "");
        if (r.dead_before)
            printf("  note: the unit is dead on the evaluation set (mu_max = 0): its ReLU passes no gradient; pick a "
                   "live unit (memloc unitmem lists them)\n");
        printf("  %-28s %10.4f %10.4f  max |change| %.3g\n", "other units of the tap", r.same_tap_before,
               r.same_tap_after, r.same_tap_max_change);
        if (r.later_units)
            printf("  %-28s %10.4f %10.4f  max |change| %.3g (%lld units)\n", "units of later taps", r.later_before,
                   r.later_after, r.later_max_change, (long long)r.later_units);
        if (out) printf("wrote %s\n", out);
    }
    goto done;
fail:
    rc = cli_fail(ctx, st, cmd);
done:
    mloc_dataset_free(&d);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return rc;
}
