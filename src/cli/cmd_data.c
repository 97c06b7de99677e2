/* memloc data info | fetch | split: inspect, download and split datasets. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "memloc/data.h"

static const char usage_text[] =
    "usage: memloc data info SPEC [--indices I] [--pad N | --resize N] [--rgb | --gray]\n"
    "                            [--skip-corrupt] [--json] [-j N] [-q] [-v]\n"
    "       memloc data fetch cifar10|cifar100|stl10|svhn|fmnist|mnist DIR\n"
    "                            [--url URL] [--md5 HEX] [--sha256 HEX] [--force]\n"
    "       memloc data split SPEC -o split.json [--fractions S,C,I]\n"
    "                            [--shared I --candidate I --independent I]\n"
    "\n"
    "Examples:\n"
    "  memloc data info cifar10:~/data/cifar10:test\n"
    "  memloc data info fmnist --pad 32 --rgb          # Debian's Fashion-MNIST as 32x32 RGB\n"
    "  memloc data info folder:../shared/data/cifar10-jpeg.tar.gz/train --json\n"
    "  memloc data info cifar10:~/data/cifar10 --indices 0:40000,45000:50000\n"
    "  memloc data info synthetic:1000:32x32x3:10@0:100\n"
    "  memloc data fetch cifar10 ~/data/cifar10\n"
    "  memloc data split cifar10:~/data/cifar10 -o runs/x/split.json\n"
    "\n"
    "Dataset specs (the same in every command):\n"
    "  cifar10:DIR[:train|test]           CIFAR-10 binary (data_batch_*.bin, test_batch.bin)\n"
    "  cifar100:DIR[:train|test]          CIFAR-100 binary (train.bin, test.bin; fine labels)\n"
    "  mnist[:DIR][:train|test]           MNIST IDX files, .gz or plain\n"
    "  fmnist[:DIR][:train|test]          Fashion-MNIST (DIR: /usr/share/datasets/fashion-mnist)\n"
    "  stl10:DIR[:train|test|unlabeled]   STL-10 binary\n"
    "  svhn:FILE                          SVHN *_32x32.mat (MATLAB v5)\n"
    "  folder:PATH[/SUBDIR]               ImageFolder directory, or a .tar/.tar.gz of one\n"
    "  synthetic:N[:HxWxC[:K]]            deterministic random images, K classes\n"
    "  SPEC@INDICES                       a subset: 0:40000,45000:50000 (half-open ranges),\n"
    "                                     single indices, @FILE (one index per line), or\n"
    "                                     shuffle[:N[:SEED]]: the first N of a seeded permutation\n"
    "                                     (random subsets of class-sorted folders such as CIFAR JPEG)\n"
    "\n"
    "info prints the image count, shape, classes and images per class.\n"
    "  --indices I        a subset, as after '@'\n"
    "  --pad N            zero-pad images to NxN, centred (28 -> 32: 2 px each side)\n"
    "  --resize N         resize images to NxN (PIL bilinear)\n"
    "  --rgb / --gray     replicate gray to 3 channels / convert RGB to gray (PIL L)\n"
    "  --skip-corrupt     skip images that fail to decode (folder), listing them\n"
    "  --json             one JSON document on stdout (schema memloc.data_info/1)\n"
    "\n"
    "fetch downloads the official files into DIR, verifies their checksums and unpacks\n"
    "archives; nothing is left behind on failure. MLOC_FETCH_BASE_URL replaces the\n"
    "directory part of the built-in URLs (mirrors, tests).\n"
    "  --url URL          full URL of a one-file dataset, or a base ending in '/'\n"
    "  --md5 HEX, --sha256 HEX   expected checksum (one-file datasets)\n"
    "  --force            fetch even if the data is already there\n"
    "\n"
    "split writes the shared / candidate / independent split (SPEC.md section 1) of a\n"
    "training set, in order, as JSON.\n"
    "  --fractions S,C,I  shares of the three sets (0.8,0.1,0.1)\n"
    "  --shared I --candidate I --independent I   explicit index lists or @FILEs\n"
    "\n"
    "Common options: -j/--jobs N threads, -q/--quiet, -v/--verbose, --debug.\n"
    "Exit status: 0 ok, 64 usage, 65 malformed data or checksum mismatch, 66 missing input.\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    cli_common common;
    mloc_dataset_options dopt;
    mloc_fetch_options fopt;
    int json;
    const char *output;
    const char *fractions;
    const char *sets[3];
} data_args;

/* Parse options after the subcommand; returns 0 to go on, else an exit code
 * (with -1 meaning "help printed, exit 0"). */
static int parse(int argc, char **argv, const char *cmd, data_args *a) {
    enum { O_INDICES = 256, O_PAD, O_RESIZE, O_RGB, O_GRAY, O_SKIP, O_JSON, O_URL, O_MD5, O_SHA,
           O_FORCE, O_FRACTIONS, O_SHARED, O_CAND, O_INDEP, O_DEBUG, O_THREADS };
    static const struct option opts[] = {
        {"indices", required_argument, 0, O_INDICES}, {"pad", required_argument, 0, O_PAD},
        {"resize", required_argument, 0, O_RESIZE},   {"rgb", no_argument, 0, O_RGB},
        {"gray", no_argument, 0, O_GRAY},             {"skip-corrupt", no_argument, 0, O_SKIP},
        {"json", no_argument, 0, O_JSON},             {"url", required_argument, 0, O_URL},
        {"md5", required_argument, 0, O_MD5},         {"sha256", required_argument, 0, O_SHA},
        {"force", no_argument, 0, O_FORCE},           {"fractions", required_argument, 0, O_FRACTIONS},
        {"shared", required_argument, 0, O_SHARED},   {"candidate", required_argument, 0, O_CAND},
        {"independent", required_argument, 0, O_INDEP}, {"output", required_argument, 0, 'o'},
        {"jobs", required_argument, 0, 'j'},          {"threads", required_argument, 0, O_THREADS},
        {"quiet", no_argument, 0, 'q'},               {"verbose", no_argument, 0, 'v'},
        {"debug", no_argument, 0, O_DEBUG},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    long long iv;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "o:j:qvh", opts, NULL)) != -1) {
        switch (c) {
        case O_INDICES: a->dopt.indices = optarg; break;
        case O_PAD:
        case O_RESIZE:
            if (!cli_parse_int(cmd, c == O_PAD ? "--pad" : "--resize", optarg, 1, 8192, &iv)) return 64;
            if (a->dopt.fit != MLOC_FIT_NONE) return cli_usage(cmd, "--pad and --resize exclude each other");
            a->dopt.fit = c == O_PAD ? MLOC_FIT_PAD : MLOC_FIT_RESIZE;
            a->dopt.size = (int)iv;
            break;
        case O_RGB:
        case O_GRAY:
            if (a->dopt.channels) return cli_usage(cmd, "--rgb and --gray exclude each other");
            a->dopt.channels = c == O_RGB ? 3 : 1;
            break;
        case O_SKIP: a->dopt.skip_corrupt = 1; break;
        case O_JSON: a->json = 1; break;
        case O_URL: a->fopt.url = optarg; break;
        case O_MD5: a->fopt.md5 = optarg; break;
        case O_SHA: a->fopt.sha256 = optarg; break;
        case O_FORCE: a->fopt.force = 1; break;
        case O_FRACTIONS: a->fractions = optarg; break;
        case O_SHARED: a->sets[0] = optarg; break;
        case O_CAND: a->sets[1] = optarg; break;
        case O_INDEP: a->sets[2] = optarg; break;
        case 'o': a->output = optarg; break;
        case 'j':
        case O_THREADS:
            if (!cli_parse_int(cmd, c == 'j' ? "--jobs" : "--threads", optarg, 0, 4096, &iv)) return 64;
            a->common.threads = (int)iv;
            break;
        case 'q': a->common.quiet = 1; break;
        case 'v': a->common.verbose++; break;
        case O_DEBUG: a->common.debug = 1; break;
        case 'h': fputs(usage_text, stdout); return -1;
        default:
            return cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    return 0;
}

static int finish(mloc_ctx *ctx, mloc_status st, int rc) {
    if (st != MLOC_OK) rc = cli_fail(ctx, st, "data");
    mloc_ctx_destroy(ctx);
    return rc;
}

static int run_info(data_args *a, const char *spec) {
    mloc_ctx *ctx = cli_ctx(&a->common);
    if (!ctx) return 70;
    mloc_dataset d;
    double t0 = now_s();
    mloc_status st = mloc_dataset_open(ctx, &d, spec, &a->dopt);
    if (st != MLOC_OK) return finish(ctx, st, 0);
    double secs = now_s() - t0;
    if (a->common.verbose) fprintf(stderr, "memloc: data: read %lld images in %.2f s\n", (long long)d.n, secs);
    int64_t *counts = calloc((size_t)d.n_classes + 1, sizeof *counts);
    if (!counts) {
        mloc_dataset_free(&d);
        return finish(ctx, mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory"), 0);
    }
    int64_t unlabelled = mloc_dataset_class_counts(&d, counts);
    char digest[65];
    mloc_dataset_digest(&d, digest);
    if (a->json) {
        json_t *doc = json_pack("{s:s, s:s, s:I, s:[i,i,i], s:i, s:I, s:I, s:s, s:f}", "schema",
                                "memloc.data_info/1", "spec", d.spec, "n", (json_int_t)d.n, "shape",
                                d.h, d.w, d.c, "n_classes", d.n_classes, "unlabeled",
                                (json_int_t)unlabelled, "skipped", (json_int_t)d.n_skipped, "sha256",
                                digest, "seconds", secs);
        json_object_set_new(doc, "prep", d.prep ? json_string(d.prep) : json_null());
        json_t *cls = json_array();
        for (int k = 0; k < d.n_classes; k++)
            json_array_append_new(cls, json_pack("{s:i, s:s, s:I}", "index", k, "name",
                                                 d.class_names[k], "count", (json_int_t)counts[k]));
        json_object_set_new(doc, "classes", cls);
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text) puts(text);
        free(text);
        json_decref(doc);
    } else {
        printf("dataset   %s\n", d.spec);
        printf("images    %lld\n", (long long)d.n);
        printf("shape     %dx%dx%d (H x W x C, uint8)\n", d.h, d.w, d.c);
        if (d.prep) printf("prepared  %s\n", d.prep);
        if (d.n_skipped) printf("skipped   %lld corrupt images\n", (long long)d.n_skipped);
        if (unlabelled) printf("unlabeled %lld\n", (long long)unlabelled);
        printf("sha256    %s\n", digest);
        printf("classes   %d\n", d.n_classes);
        for (int k = 0; k < d.n_classes; k++)
            printf("  %5d  %-24s %8lld\n", k, d.class_names[k], (long long)counts[k]);
    }
    free(counts);
    mloc_dataset_free(&d);
    return finish(ctx, MLOC_OK, 0);
}

static int run_fetch(data_args *a, const char *name, const char *dir) {
    mloc_ctx *ctx = cli_ctx(&a->common);
    if (!ctx) return 70;
    mloc_status st = mloc_data_fetch(ctx, name, dir, &a->fopt);
    if (st == MLOC_OK && !a->common.quiet) fprintf(stderr, "memloc: data: %s is in %s\n", name, dir);
    return finish(ctx, st, 0);
}

static int run_split(data_args *a, const char *spec) {
    if (!a->output) return cli_usage("data", "split: -o FILE is required");
    double f[3] = {0.8, 0.1, 0.1};
    int explicit_sets = a->sets[0] || a->sets[1] || a->sets[2];
    if (a->fractions) {
        if (explicit_sets) return cli_usage("data", "--fractions and explicit index lists exclude each other");
        char *end;
        const char *p = a->fractions;
        for (int i = 0; i < 3; i++) {
            f[i] = strtod(p, &end);
            if (end == p || (i < 2 && *end != ',') || (i == 2 && *end))
                return cli_usage("data", "--fractions: '%s', expected three numbers S,C,I", a->fractions);
            p = end + 1;
        }
    }
    mloc_ctx *ctx = cli_ctx(&a->common);
    if (!ctx) return 70;
    mloc_dataset d;
    mloc_split s;
    memset(&s, 0, sizeof s);
    mloc_status st = mloc_dataset_open(ctx, &d, spec, &a->dopt);
    if (st != MLOC_OK) return finish(ctx, st, 0);
    st = explicit_sets ? mloc_split_from_indices(ctx, &s, d.n, a->sets[0], a->sets[1], a->sets[2])
                       : mloc_split_make(ctx, &s, d.n, f[0], f[1], f[2]);
    if (st == MLOC_OK) st = mloc_split_set_dataset(ctx, &s, d.spec);
    if (st == MLOC_OK) st = mloc_split_write(ctx, &s, a->output);
    if (st == MLOC_OK && !a->common.quiet)
        fprintf(stderr, "memloc: data: %s: shared %lld, candidate %lld, independent %lld of %lld\n",
                a->output, (long long)s.n_shared, (long long)s.n_candidate, (long long)s.n_independent,
                (long long)s.n);
    mloc_split_free(&s);
    mloc_dataset_free(&d);
    return finish(ctx, st, 0);
}

int cmd_data(int argc, char **argv) {
    if (argc < 2) return cli_usage("data", "expected a subcommand: info, fetch or split");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    data_args a;
    memset(&a, 0, sizeof a);
    a.common.cmd = "data";
    a.dopt = mloc_dataset_options_default();
    /* getopt over "sub args...": argv[1] is the subcommand, positionals follow */
    int rc = parse(argc - 1, argv + 1, "data", &a);
    if (rc) return rc < 0 ? 0 : rc;
    char **pos = argv + 1 + optind;
    int npos = argc - 1 - optind;
    if (strcmp(sub, "info") == 0) {
        if (npos != 1) return cli_usage("data", "info: expected one dataset SPEC, got %d arguments", npos);
        return run_info(&a, pos[0]);
    }
    if (strcmp(sub, "fetch") == 0) {
        if (npos != 2) return cli_usage("data", "fetch: expected NAME DIR, got %d arguments", npos);
        return run_fetch(&a, pos[0], pos[1]);
    }
    if (strcmp(sub, "split") == 0) {
        if (npos != 1) return cli_usage("data", "split: expected one dataset SPEC, got %d arguments", npos);
        return run_split(&a, pos[0]);
    }
    return cli_usage("data", "'%s' is not a subcommand (info, fetch, split)", sub);
}
