/* memloc info: an architecture's taps, shapes, units and parameter counts. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "memloc/io.h"
#include "memloc/model.h"

static const char usage_text[] =
    "usage: memloc info [--arch resnet9|resnet18|resnet34|resnet50|vit_tiny|vit_small|vit_base]\n"
    "                   [--stem cifar|imagenet] [--patch-size P] [--in-channels C] [--width W]\n"
    "                   [--image-size N] [--head none|simclr|classifier|mae] [--classes K]\n"
    "                   [--weights F] [--json]\n"
    "\n"
    "Examples:\n"
    "  memloc info                                 # the paper's ResNet9 on 3x32x32\n"
    "  memloc info --in-channels 1 --width 0.5     # a half-width ResNet9 for Fashion-MNIST\n"
    "  memloc info --arch resnet18                 # torchvision ResNet18, CIFAR stem\n"
    "  memloc info --arch resnet50 --stem imagenet --image-size 224 --head classifier --classes 1000\n"
    "  memloc info --arch vit_tiny --patch-size 4  # timm ViT-Tiny on 32x32: 64 patches + CLS\n"
    "  memloc info --arch vit_base --image-size 224 --patch-size 16 --head classifier --classes 1000\n"
    "  memloc info --weights runs/f/model.safetensors   # what a weights file holds\n"
    "\n"
    "Prints every tap (the named layer outputs the memorization metrics read) with\n"
    "its output shape for one image, its units (channels) and the parameters of\n"
    "the block that produces it, then the totals of the encoder and of the head.\n"
    "With --weights, the architecture is read from the file (memloc metadata, or\n"
    "inferred from PyTorch names), every tensor is checked, and the file's\n"
    "metadata is shown.\n"
    "\n"
    "Options:\n"
    "  --arch NAME          architecture: resnet9 (the paper's), resnet18, resnet34, resnet50,\n"
    "                       vit_tiny, vit_small, vit_base (timm; taps blocks.N.attn, blocks.N.mlp.act,\n"
    "                       blocks.N, cls; token taps are tokens x 1 x width, their units the\n"
    "                       features, each the mean over the tokens)\n"
    "  --patch-size P       ViT patch side (4; the image size must be a multiple)\n"
    "  --stem KIND          ResNet18/34/50 stem: cifar (3x3 conv1, stride 1, padding 1, no\n"
    "                       maxpool; default) or imagenet (7x7/2 conv1 and a 3x3/2 maxpool)\n"
    "  --in-channels C      input channels (3; 1 for (Fashion-)MNIST)\n"
    "  --width W            channel multiplier (1.0)\n"
    "  --image-size N       input height and width (32)\n"
    "  --head KIND          none, simclr (1024-512-128 projection), classifier, or mae (ViT: MAE's\n"
    "                       decoder, 128 wide, 2 blocks, 4 heads)\n"
    "  --classes K          classifier outputs (10)\n"
    "  --weights F          a safetensors file of memloc or PyTorch\n"
    "  --json               one JSON document on stdout\n";

static int64_t module_params(const mloc_model *m, int module) {
    int64_t n = 0;
    for (int i = 0; i < m->table.n; i++)
        if (m->table.t[i].module == module && mloc_role_block(m->table.t[i].role) == MLOC_BLOCK_PARAM)
            n += m->table.t[i].numel;
    return n;
}

static void print_count(char *buf, size_t n, int64_t v) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)v);
    size_t len = strlen(raw), o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = 0;
}

int cmd_info(int argc, char **argv) {
    static const struct option opts[] = {
        {"arch", required_argument, 0, 'a'},        {"in-channels", required_argument, 0, 'c'},
        {"width", required_argument, 0, 'w'},       {"image-size", required_argument, 0, 's'},
        {"head", required_argument, 0, 'H'},        {"classes", required_argument, 0, 'k'},
        {"weights", required_argument, 0, 'W'},     {"json", no_argument, 0, 'J'},
        {"stem", required_argument, 0, 'S'},        {"help", no_argument, 0, 'h'},
        {"patch-size", required_argument, 0, 'P'},
        {0, 0, 0, 0}};
    mloc_model_config cfg = mloc_model_config_default();
    const char *weights = NULL;
    int json = 0, classes = 10, head = MLOC_HEAD_SIMCLR;
    long long iv;
    double dv;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            if (cli_parse_choice("info", "--arch", optarg, mloc_model_archs()) < 0) return 64;
            cfg.arch = optarg;
            break;
        case 'P':
            if (!cli_parse_int("info", "--patch-size", optarg, 1, 1024, &iv)) return 64;
            cfg.patch_size = (int)iv;
            break;
        case 'S': {
            static const char *const stems[] = {"cifar", "imagenet", NULL};
            int sk = cli_parse_choice("info", "--stem", optarg, stems);
            if (sk < 0) return 64;
            cfg.stem = (mloc_stem)sk;
            break;
        }
        case 'c':
            if (!cli_parse_int("info", "--in-channels", optarg, 1, 64, &iv)) return 64;
            cfg.in_channels = (int)iv;
            break;
        case 'w':
            if (!cli_parse_double("info", "--width", optarg, 1e-3, 16, &dv)) return 64;
            cfg.width = dv;
            break;
        case 's':
            if (!cli_parse_int("info", "--image-size", optarg, 16, 4096, &iv)) return 64;
            cfg.image_h = cfg.image_w = (int)iv;
            break;
        case 'H': {
            static const char *const heads[] = {"none", "simclr", "classifier", "simsiam", "dino", "mae", NULL};
            if ((head = cli_parse_choice("info", "--head", optarg, heads)) < 0) return 64;
            break;
        }
        case 'k':
            if (!cli_parse_int("info", "--classes", optarg, 1, 100000, &iv)) return 64;
            classes = (int)iv;
            break;
        case 'W': weights = optarg; break;
        case 'J': json = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: return cli_usage("info", "unknown option");
        }
    }
    if (optind < argc) return cli_usage("info", "unexpected argument '%s'", argv[optind]);
    cfg.head = (mloc_head_kind)head;
    if (head == MLOC_HEAD_CLASSIFIER) cfg.head_out = classes;

    cli_common common = {.cmd = "info", .quiet = 1};
    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    mloc_model *m = NULL;
    mloc_st_file *f = NULL;
    mloc_status st;
    if (weights) {
        st = mloc_st_open(ctx, &f, weights);
        if (st == MLOC_OK) st = mloc_model_config_from_file(ctx, &cfg, f);
        if (st == MLOC_OK) st = mloc_model_create(ctx, &m, &cfg);
        if (st == MLOC_OK) st = mloc_model_load(ctx, m, f);
    } else {
        st = mloc_model_create(ctx, &m, &cfg);
    }
    if (st != MLOC_OK) {
        int rc = cli_fail(ctx, st, "info");
        mloc_st_close(f);
        mloc_model_free(m);
        mloc_ctx_destroy(ctx);
        return rc;
    }
    int64_t enc = mloc_model_param_count(m, 1), all = mloc_model_param_count(m, 0);
    const int vit = strncmp(m->arch, "vit_", 4) == 0;
    int conv_units = 0;
    for (int t = 0; t < m->n_taps; t++)
        if (m->taps[t].module >= 0) conv_units += m->taps[t].units;
    if (json) {
        json_t *doc = json_pack("{s:s, s:s, s:i, s:i, s:i, s:f, s:s, s:I, s:I, s:i}", "schema",
                                "memloc.info/1", "arch", m->arch, "in_channels", m->cfg.in_channels,
                                "image_h", m->cfg.image_h, "image_w", m->cfg.image_w, "width", m->cfg.width,
                                "head", mloc_head_name(m->cfg.head), "encoder_params", (json_int_t)enc,
                                "head_params", (json_int_t)(all - enc), "conv_units", conv_units);
        if (vit)
            json_object_set_new(doc, "patch_size", json_integer(m->cfg.patch_size));
        else if (strcmp(m->arch, "resnet9") != 0)
            json_object_set_new(doc, "stem", json_string(mloc_stem_name(m->cfg.stem)));
        json_t *taps = json_array();
        for (int t = 0; t < m->n_taps; t++) {
            const mloc_tap *tp = &m->taps[t];
            const mloc_value *v = &m->values[tp->value];
            json_array_append_new(taps, json_pack("{s:s, s:[i,i,i], s:i, s:I, s:s}", "name", tp->name, "shape",
                                                  v->c, v->h, v->w, "units", tp->units, "params",
                                                  (json_int_t)(tp->module >= 0 ? module_params(m, tp->module) : 0),
                                                  "module", tp->module >= 0 ? m->modules[tp->module] : ""));
        }
        json_object_set_new(doc, "taps", taps);
        if (weights) json_object_set_new(doc, "weights", json_string(weights));
        char *text = json_dumps(doc, JSON_INDENT(2));
        puts(text);
        free(text);
        json_decref(doc);
    } else {
        char a[32], b[32];
        char stem[32] = "";
        if (vit) snprintf(stem, sizeof stem, ", patch %d", m->cfg.patch_size);
        else if (strcmp(m->arch, "resnet9") != 0) snprintf(stem, sizeof stem, ", %s stem", mloc_stem_name(m->cfg.stem));
        int heads = 0;
        for (int i = 0; i < m->n_nodes && !heads; i++)
            if (m->nodes[i].op == MLOC_OP_ATTENTION) heads = m->nodes[i].u.attn.heads;
        if (vit)
            printf("%s: %d x %d x %d input%s, %d wide, %d heads, head %s\n", m->arch, m->cfg.in_channels,
                   m->cfg.image_h, m->cfg.image_w, stem, m->values[m->feature].c, heads, mloc_head_name(m->cfg.head));
        else
            printf("%s: %d x %d x %d input%s, width %g, head %s\n", m->arch, m->cfg.in_channels, m->cfg.image_h,
                   m->cfg.image_w, stem, m->cfg.width, mloc_head_name(m->cfg.head));
        if (weights) printf("weights: %s (%d tensors, every encoder tensor checked)\n", weights, mloc_st_count(f));
        printf("\n  %-3s %-18s %-12s %7s %11s\n", "#", "tap", "shape", "units", "params");
        for (int t = 0; t < m->n_taps; t++) {
            const mloc_tap *tp = &m->taps[t];
            const mloc_value *v = &m->values[tp->value];
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%dx%d", v->c, v->h, v->w);
            print_count(a, sizeof a, tp->module >= 0 ? module_params(m, tp->module) : 0);
            printf("  %-3d %-18s %-12s %7d %11s%s\n", t + 1, tp->name, shape, tp->units,
                   tp->module >= 0 ? a : "-", tp->module >= 0 ? "" : "  (residual sum)");
        }
        print_count(a, sizeof a, enc);
        printf("\nencoder: %s parameters, %d %s, %d taps, output %lld features\n", a, conv_units,
               vit ? "units (features of the taps)" : "conv units", m->n_taps,
               (long long)mloc_model_value_numel(m, m->feature));
        if (m->cfg.head != MLOC_HEAD_NONE) {
            print_count(b, sizeof b, all - enc);
            printf("head (%s, not a tap): %s parameters\n", mloc_head_name(m->cfg.head), b);
        }
        if (weights) {
            static const char *keys[] = {"memloc_version", "method", "dataset", "seed", "epoch", NULL};
            for (int k = 0; keys[k]; k++) {
                const char *v = mloc_st_metadata(f, keys[k]);
                if (v) printf("%s: %s\n", keys[k], v);
            }
        }
    }
    mloc_st_close(f);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return 0;
}
