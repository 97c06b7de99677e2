/* Datasets in memory: every reader (CIFAR binary, IDX, STL-10, SVHN .mat,
 * ImageFolder directories and tarballs) produces one uint8 NHWC array with
 * labels and class names (FORMATS.md section 1). */
#ifndef MEMLOC_DATA_H
#define MEMLOC_DATA_H

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
} mloc_dataset;

void mloc_dataset_free(mloc_dataset *d);

#endif
