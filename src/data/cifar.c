/* CIFAR-10 / CIFAR-100 binary batches (FORMATS.md 1.1).
 *
 * A CIFAR-10 record is 3,073 bytes: the label (0..9), then the 32x32 red,
 * green and blue planes, each row-major:
 *     pixel(n,h,w,c) = file[n*3073 + 1 + c*1024 + h*32 + w]
 * A CIFAR-100 record is 3,074 bytes: coarse (0..19) and fine (0..99) label,
 * then the same planes. The class is the fine label, as in torchvision. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/internal.h"

#define PLANE 1024
#define CHUNK_RECORDS 1024

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

static const char *const cifar100_names[100] = {
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"};

/* Decode `count` records starting at dataset item `at`; `rec0` is the
 * first record's number within `file` (for messages). */
static mloc_status decode_records(mloc_ctx *ctx, mloc_dataset *d, int64_t at, const uint8_t *buf,
                                  int64_t count, int cifar100, const char *file, int64_t rec0) {
    size_t rec = cifar100 ? 3074 : 3073;
    int hdr = cifar100 ? 2 : 1;
    for (int64_t r = 0; r < count; r++) {
        const uint8_t *p = buf + (size_t)r * rec;
        if (cifar100) {
            if (p[0] > 19)
                return mloc_error(ctx, MLOC_ERR_DATA,
                                  "%s: record %lld: coarse label %d, expected 0..19 (is this a "
                                  "CIFAR-100 file?)",
                                  file, (long long)(rec0 + r), p[0]);
            if (p[1] > 99)
                return mloc_error(ctx, MLOC_ERR_DATA, "%s: record %lld: fine label %d, expected 0..99",
                                  file, (long long)(rec0 + r), p[1]);
            d->coarse[at + r] = p[0];
            d->labels[at + r] = p[1];
        } else {
            if (p[0] > 9)
                return mloc_error(ctx, MLOC_ERR_DATA,
                                  "%s: record %lld: label %d, expected 0..9 (is this a CIFAR-10 "
                                  "file?)",
                                  file, (long long)(rec0 + r), p[0]);
            d->labels[at + r] = p[0];
        }
        /* CHW planes -> HWC */
        const uint8_t *planes = p + hdr;
        uint8_t *out = d->pixels + (size_t)(at + r) * 3 * PLANE;
        for (int i = 0; i < PLANE; i++) {
            out[3 * i + 0] = planes[i];
            out[3 * i + 1] = planes[PLANE + i];
            out[3 * i + 2] = planes[2 * PLANE + i];
        }
    }
    return MLOC_OK;
}

static mloc_status check_size(mloc_ctx *ctx, const char *file, uint64_t size, int cifar100,
                              int64_t *records) {
    size_t rec = cifar100 ? 3074 : 3073;
    if (size == 0 || size % rec != 0)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: %llu bytes, expected a whole number of %zu-byte CIFAR-%s records "
                          "(%s%llu extra bytes)",
                          file, (unsigned long long)size, rec, cifar100 ? "100" : "10",
                          size % rec ? "truncated or wrong format? " : "",
                          (unsigned long long)(size % rec));
    *records = (int64_t)(size / rec);
    return MLOC_OK;
}

mloc_status mloc_cifar_read_memory(mloc_ctx *ctx, mloc_dataset *d, const void *bytes, size_t size,
                                   int cifar100, const char *label) {
    memset(d, 0, sizeof *d);
    int64_t n;
    MLOC_TRY(check_size(ctx, label, size, cifar100, &n));
    mloc_status st = data_alloc(ctx, d, n, 32, 32, 3, cifar100);
    if (st == MLOC_OK) st = decode_records(ctx, d, 0, bytes, n, cifar100, label, 0);
    if (st == MLOC_OK)
        st = cifar100 ? data_set_names(ctx, d, cifar100_names, 100)
                      : data_set_names(ctx, d, cifar10_names, 10);
    if (st != MLOC_OK) mloc_dataset_free(d);
    return st;
}

/* The directory holding the batches: DIR itself or the folder the official
 * archive unpacks to. */
static char *batch_dir(const char *dir, const char *sub, const char *probe) {
    char *p = data_strdupf("%s/%s", dir, probe);
    int here = p && data_file_exists(p);
    free(p);
    if (here) return strdup(dir);
    p = data_strdupf("%s/%s/%s", dir, sub, probe);
    int below = p && data_file_exists(p);
    free(p);
    return below ? data_strdupf("%s/%s", dir, sub) : NULL;
}

mloc_status data_open_cifar(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s) {
    int c100 = s->kind == MLOC_DS_CIFAR100;
    int train = strcmp(s->split, "train") == 0;
    const char *files10_train[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                   "data_batch_4.bin", "data_batch_5.bin"};
    const char *files10_test[] = {"test_batch.bin"};
    const char *files100_train[] = {"train.bin"};
    const char *files100_test[] = {"test.bin"};
    const char **files = c100 ? (train ? files100_train : files100_test)
                              : (train ? files10_train : files10_test);
    int nfiles = c100 || !train ? 1 : 5;
    const char *sub = c100 ? "cifar-100-binary" : "cifar-10-batches-bin";

    if (!data_dir_exists(s->path))
        return mloc_error(ctx, MLOC_ERR_NOINPUT,
                          "%s: no such directory (fetch it with 'memloc data fetch %s %s')", s->path,
                          c100 ? "cifar100" : "cifar10", s->path);
    char *dir = batch_dir(s->path, sub, files[0]);
    if (!dir)
        return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s/%s: missing (also looked in %s/%s/)", s->path,
                          files[0], s->path, sub);
    mloc_status st = MLOC_OK;
    char *paths[5] = {0};
    int64_t counts[5] = {0}, total = 0;
    uint8_t *chunk = NULL;
    FILE *f = NULL;
    for (int i = 0; i < nfiles; i++) {
        paths[i] = data_strdupf("%s/%s", dir, files[i]);
        if (!paths[i]) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            goto done;
        }
        struct stat sb;
        if (stat(paths[i], &sb) != 0) {
            st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: missing: %s", paths[i], strerror(errno));
            goto done;
        }
        st = check_size(ctx, paths[i], (uint64_t)sb.st_size, c100, &counts[i]);
        if (st != MLOC_OK) goto done;
        total += counts[i];
    }
    st = data_alloc(ctx, d, total, 32, 32, 3, c100);
    if (st != MLOC_OK) goto done;
    size_t rec = c100 ? 3074 : 3073;
    chunk = malloc(rec * CHUNK_RECORDS);
    if (!chunk) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        goto done;
    }
    int64_t at = 0;
    for (int i = 0; i < nfiles; i++) {
        f = fopen(paths[i], "rb");
        if (!f) {
            st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: cannot open: %s", paths[i], strerror(errno));
            goto done;
        }
        for (int64_t r = 0; r < counts[i]; r += CHUNK_RECORDS) {
            int64_t m = counts[i] - r < CHUNK_RECORDS ? counts[i] - r : CHUNK_RECORDS;
            if (fread(chunk, rec, (size_t)m, f) != (size_t)m) {
                st = mloc_error(ctx, MLOC_ERR_IO, "%s: short read at record %lld", paths[i],
                                (long long)r);
                goto done;
            }
            st = decode_records(ctx, d, at + r, chunk, m, c100, paths[i], r);
            if (st != MLOC_OK) goto done;
            mloc_progress(ctx, "data", at + r + m, total, "");
        }
        fclose(f);
        f = NULL;
        at += counts[i];
    }
    st = c100 ? data_set_names(ctx, d, cifar100_names, 100) : data_set_names(ctx, d, cifar10_names, 10);
    if (st != MLOC_OK) goto done;
    {
        char *names = data_strdupf("%s/%s", dir, c100 ? "fine_label_names.txt" : "batches.meta.txt");
        if (!names) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            goto done;
        }
        st = data_load_names(ctx, d, names, c100 ? 100 : 10);
        free(names);
    }
done:
    if (f) fclose(f);
    free(chunk);
    for (int i = 0; i < 5; i++) free(paths[i]);
    free(dir);
    if (st != MLOC_OK) mloc_dataset_free(d);
    return st;
}
