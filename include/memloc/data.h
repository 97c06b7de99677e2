/* Datasets in memory: every reader (CIFAR binary, IDX, STL-10, SVHN .mat,
 * ImageFolder directories and tarballs) produces one uint8 NHWC array with
 * labels and class names (FORMATS.md section 1).
 *
 * A dataset is named by one spec string, the same for every command:
 *
 *   cifar10:DIR[:train|test]            CIFAR-10 binary batches
 *   cifar100:DIR[:train|test]           CIFAR-100 binary (class = fine label)
 *   mnist[:DIR][:train|test]            MNIST IDX, .gz or plain
 *   fmnist[:DIR][:train|test]           Fashion-MNIST (DIR defaults to
 *                                       /usr/share/datasets/fashion-mnist)
 *   stl10:DIR[:train|test|unlabeled]    STL-10 binary
 *   svhn:FILE                           SVHN cropped digits, MATLAB v5 .mat
 *   folder:PATH[/SUBDIR]                torchvision ImageFolder: a directory,
 *                                       or a .tar/.tar.gz of one read in place
 *   synthetic:N[:HxWxC[:K]]             deterministic random images, K classes
 *
 * followed by an optional "@INDICES" (see mloc_indices_parse). The split
 * defaults to train. Every error names the file (and record or tar member)
 * and what was expected: ERR_NOINPUT for missing input, ERR_DATA for
 * malformed input, ERR_USAGE for a malformed spec or index. */
#ifndef MEMLOC_DATA_H
#define MEMLOC_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "memloc/context.h"

typedef struct {
    int64_t n;            /* images */
    int h, w, c;          /* every image is h x w x c, c = 1 or 3 */
    uint8_t *pixels;      /* n*h*w*c, NHWC: pixel(i,y,x,ch) = pixels[((i*h+y)*w+x)*c+ch] */
    int32_t *labels;      /* n; -1 for unlabelled */
    int32_t *coarse;      /* CIFAR-100 coarse labels, else NULL */
    int n_classes;
    char **class_names;   /* n_classes NUL-terminated names */
    char *spec;           /* canonical spec it was read from, e.g. "cifar10:/d:train" */
    char **sources;       /* per-image origin (file or tar member) or NULL */
    /* Added by the data layer: */
    int64_t *index;       /* n: position of each image in the full split the
                             spec names (after an @INDICES subset), or NULL
                             when image i is simply item i */
    char *prep;           /* what was done beyond decoding ("pad 28x28 -> 32x32
                             (zero, 2 px each side); gray -> RGB (replicated)"),
                             or NULL */
    int64_t n_skipped;    /* corrupt images skipped (skip_corrupt), 0 otherwise */
} mloc_dataset;

/* Frees every array and string and zeroes *d; a zeroed dataset is valid. */
void mloc_dataset_free(mloc_dataset *d);

/* ---- dataset specs ------------------------------------------------------ */

/*        name        spec word    description */
#define MLOC_DATASET_KINDS(X)                                                 \
    X(CIFAR10,   "cifar10",   "CIFAR-10 binary batches")                      \
    X(CIFAR100,  "cifar100",  "CIFAR-100 binary (fine labels)")               \
    X(MNIST,     "mnist",     "MNIST IDX")                                    \
    X(FMNIST,    "fmnist",    "Fashion-MNIST IDX")                            \
    X(STL10,     "stl10",     "STL-10 binary")                                \
    X(SVHN,      "svhn",      "SVHN cropped digits (.mat)")                   \
    X(FOLDER,    "folder",    "ImageFolder directory or tar")                 \
    X(SYNTHETIC, "synthetic", "deterministic random images")

typedef enum {
#define MLOC_X(name, word, text) MLOC_DS_##name,
    MLOC_DATASET_KINDS(MLOC_X)
#undef MLOC_X
    MLOC_DS_COUNT
} mloc_dataset_kind;

const char *mloc_dataset_kind_name(mloc_dataset_kind k); /* "cifar10", ... */

#define MLOC_FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define MLOC_MNIST_DEFAULT_DIR "/usr/share/datasets/mnist"

typedef struct {
    mloc_dataset_kind kind;
    char *path;     /* DIR, FILE, or the folder / archive path */
    char *subdir;   /* folder: directory inside an archive, else NULL */
    char *split;    /* "train", "test", "unlabeled"; NULL for svhn, folder, synthetic */
    int64_t n;      /* synthetic: images */
    int h, w, c, k; /* synthetic: shape and classes (defaults 32x32x3, 10) */
    char *indices;  /* the text after '@', or NULL */
} mloc_dataset_spec;

/* Parse a spec string (no file system access; an archive inside a folder
 * path is recognised by its name: ".tar", ".tar.gz", ".tgz", ...; a path
 * starting with "~/" is taken relative to $HOME).
 * ERR_USAGE with the accepted forms on failure. */
mloc_status mloc_dataset_spec_parse(mloc_ctx *ctx, mloc_dataset_spec *out, const char *text);
void mloc_dataset_spec_free(mloc_dataset_spec *s);
/* The canonical spelling, e.g. "cifar10:/d:train@0:100"; malloc'ed, NULL on OOM. */
char *mloc_dataset_spec_format(const mloc_dataset_spec *s);

/* ---- opening ------------------------------------------------------------- */

typedef enum {
    MLOC_FIT_NONE = 0, /* keep the stored size */
    MLOC_FIT_PAD,      /* zero-pad centred to size x size (28 -> 32: 2 px each side) */
    MLOC_FIT_RESIZE    /* resize to size x size, PIL bilinear (FORMATS.md 3.2) */
} mloc_fit;

typedef struct {
    int skip_corrupt;   /* folder: skip images that fail to decode, with a
                           warning listing them (default 0: an error) */
    mloc_fit fit;       /* default NONE */
    int size;           /* target side for fit */
    int channels;       /* 0 keep (default); 3 replicate gray to RGB; 1 RGB to
                           gray with PIL's L weights */
    const char *indices;/* index text applied like the spec's @INDICES (not
                           both); NULL: all */
    int64_t max_pixels; /* largest decoded image (h*w) accepted; 0: 1 << 26 */
} mloc_dataset_options;

mloc_dataset_options mloc_dataset_options_default(void);

/* Read the dataset a spec names into *d (zeroed first; freed on failure).
 * opt may be NULL for the defaults. Reports progress as "data". */
mloc_status mloc_dataset_open(mloc_ctx *ctx, mloc_dataset *d, const char *spec,
                              const mloc_dataset_options *opt);

/* Index text against n items, into a malloc'ed array (free with free):
 *   "0:40000,45000:50000"   half-open ranges, Python style (start or stop may
 *                           be omitted; negative values count from n)
 *   "7,9"                   single indices
 *   "@FILE"                 one index (or range) per line; '#' comments
 * Every index must lie in [0, n): ERR_USAGE otherwise (ERR_DATA, naming the
 * file and line, inside @FILE; ERR_NOINPUT if FILE is missing). */
mloc_status mloc_indices_parse(mloc_ctx *ctx, const char *text, int64_t n, int64_t **out,
                               int64_t *count);
/* Compact text for an index list ("0:40000,45000:50000"); malloc'ed. */
char *mloc_indices_format(const int64_t *idx, int64_t count);

/* out = d[idx[0..count)] (copies; out->index maps back to d's items). */
mloc_status mloc_dataset_subset(mloc_ctx *ctx, mloc_dataset *out, const mloc_dataset *d,
                                const int64_t *idx, int64_t count);

/* Images per class into counts[n_classes]; returns the unlabelled count. */
int64_t mloc_dataset_class_counts(const mloc_dataset *d, int64_t *counts);

/* SHA-256 (lower-case hex) of the shape, pixels and labels: the dataset
 * checksum a run records. */
void mloc_dataset_digest(const mloc_dataset *d, char hex[65]);

/* ---- in-memory readers (tests, fuzzing, embedding) ----------------------- */
/* `label` names the buffer in errors, as a file name would. */

/* CIFAR-10 (cifar100 = 0, 3,073-byte records) or CIFAR-100 (3,074-byte
 * records, coarse kept) batch: built-in class names. */
mloc_status mloc_cifar_read_memory(mloc_ctx *ctx, mloc_dataset *d, const void *bytes, size_t size,
                                   int cifar100, const char *label);
/* IDX images (u8, N x H x W) and labels (u8, N), each plain or gzip. */
mloc_status mloc_idx_read_memory(mloc_ctx *ctx, mloc_dataset *d, const void *images,
                                 size_t images_size, const void *labels, size_t labels_size,
                                 const char *label);
/* STL-10 X (96x96x3 column-major planes) and y (1..10); y = NULL: unlabelled. */
mloc_status mloc_stl10_read_memory(mloc_ctx *ctx, mloc_dataset *d, const void *x, size_t x_size,
                                   const void *y, size_t y_size, const char *label);
/* SVHN: a MAT v5 file holding X (32x32x3xN) and y (N labels 1..10). */
mloc_status mloc_svhn_read_memory(mloc_ctx *ctx, mloc_dataset *d, const void *bytes, size_t size,
                                  const char *label);
/* ImageFolder inside a tar (optionally compressed) held in memory; subdir
 * may be NULL. */
mloc_status mloc_folder_read_memory(mloc_ctx *ctx, mloc_dataset *d, const void *bytes,
                                    size_t size, const char *subdir,
                                    const mloc_dataset_options *opt, const char *label);

/* ---- the shared / candidate / independent split (SPEC.md section 1) ------ */

typedef struct {
    int64_t n;                       /* size of the training set split */
    int64_t *shared, *candidate, *independent;
    int64_t n_shared, n_candidate, n_independent;
    double fractions[3];             /* as requested; 0 for explicit indices */
    char *dataset;                   /* spec of the split set, or NULL */
} mloc_split;

/* In order: the first round(f_s n) items are S_S, up to round((f_s+f_c) n)
 * S_C, up to round((f_s+f_c+f_i) n) S_I (defaults 0.8 / 0.1 / 0.1).
 * Fractions must be >= 0 and sum to at most 1. */
mloc_status mloc_split_make(mloc_ctx *ctx, mloc_split *s, int64_t n, double f_shared,
                            double f_candidate, double f_independent);
/* Explicit sets from index texts (mloc_indices_parse syntax, "@FILE" too);
 * the three must be pairwise disjoint. */
mloc_status mloc_split_from_indices(mloc_ctx *ctx, mloc_split *s, int64_t n, const char *shared,
                                    const char *candidate, const char *independent);
/* Record the spec of the dataset that was split (copied). */
mloc_status mloc_split_set_dataset(mloc_ctx *ctx, mloc_split *s, const char *spec);
/* Write split.json atomically: {"schema": "memloc.split/1", "n", "dataset",
 * "fractions", "counts", "shared": [[start, stop], ...], ...}. */
mloc_status mloc_split_write(mloc_ctx *ctx, const mloc_split *s, const char *path);
mloc_status mloc_split_read(mloc_ctx *ctx, mloc_split *s, const char *path);
void mloc_split_free(mloc_split *s);

/* ---- downloading (memloc data fetch) ------------------------------------- */

typedef struct {
    const char *url;    /* a full URL (one-file datasets) or a base ending in '/' */
    const char *md5;    /* expected MD5 of a one-file dataset, overriding the built-in */
    const char *sha256; /* expected SHA-256, likewise */
    int force;          /* fetch even if the unpacked files are present */
} mloc_fetch_options;

/* Download the official files of `name` (cifar10, cifar100, stl10, svhn,
 * fmnist, mnist) into dir, verify them (FORMATS.md section 1) and unpack
 * archives with libarchive. The environment variable MLOC_FETCH_BASE_URL
 * replaces the directory part of every built-in URL. A mismatch of an
 * official or torchvision checksum (or one given in opt) is ERR_DATA and
 * leaves nothing behind; a third-party checksum mismatch only warns.
 * Progress is reported as "fetch" in bytes. */
mloc_status mloc_data_fetch(mloc_ctx *ctx, const char *name, const char *dir,
                            const mloc_fetch_options *opt);

/* MD5 and SHA-256 of a file, lower-case hex (either may be NULL). */
mloc_status mloc_data_hash_file(mloc_ctx *ctx, const char *path, char md5[33], char sha256[65]);

#endif
