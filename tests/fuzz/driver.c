/* Replay driver for fuzz targets when libFuzzer is not available (gcc
 * builds): feeds every file of the corpus directory given as argv[1] to
 * LLVMFuzzerTestOneInput, then deterministic mutations of each (bit flips,
 * truncations, byte overwrites, splices), so `ctest -L fuzz` exercises every
 * parser in any build, and under ASan in the sanitizer build.
 *   fuzz_x CORPUS_DIR [MUTATIONS_PER_FILE=200] */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/rng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = n > 0 ? (size_t)n : 0;
    return buf;
}

static void mutate_and_run(const uint8_t *seed, size_t size, mloc_rng *r) {
    size_t cap = size + 64;
    uint8_t *buf = malloc(cap);
    if (!buf) return;
    memcpy(buf, seed, size);
    size_t n = size;
    int edits = 1 + (int)mloc_rng_int(r, 0, 3);
    for (int e = 0; e < edits; e++) {
        switch (mloc_rng_int(r, 0, 4)) {
        case 0: /* flip a bit */
            if (n) buf[mloc_rng_int(r, 0, (int64_t)n - 1)] ^= (uint8_t)(1u << mloc_rng_int(r, 0, 7));
            break;
        case 1: /* truncate */
            if (n) n = (size_t)mloc_rng_int(r, 0, (int64_t)n - 1);
            break;
        case 2: /* overwrite with an interesting byte */
            if (n) {
                static const uint8_t vals[] = {0, 1, 0x7f, 0x80, 0xff, '{', '}', '"', ':', ','};
                buf[mloc_rng_int(r, 0, (int64_t)n - 1)] = vals[mloc_rng_int(r, 0, sizeof vals - 1)];
            }
            break;
        case 3: /* append random bytes */
            while (n < cap && mloc_rng_int(r, 0, 3)) buf[n++] = (uint8_t)mloc_rng_u32(r);
            break;
        case 4: /* overwrite 4 bytes with a random 32-bit value */
            if (n >= 4) {
                size_t at = (size_t)mloc_rng_int(r, 0, (int64_t)n - 4);
                uint32_t v = mloc_rng_u32(r);
                memcpy(buf + at, &v, 4);
            }
            break;
        }
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS]\n", argv[0]);
        return 64;
    }
    int mutations = argc > 2 ? atoi(argv[2]) : 200;
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "%s: cannot open corpus %s\n", argv[0], argv[1]);
        return 66;
    }
    struct dirent *e;
    int files = 0;
    mloc_rng r;
    mloc_rng_init(&r, 12345, 0);
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        size_t size;
        uint8_t *buf = read_all(path, &size);
        if (!buf) continue;
        LLVMFuzzerTestOneInput(buf, size);
        for (int i = 0; i < mutations; i++) mutate_and_run(buf, size, &r);
        free(buf);
        files++;
    }
    closedir(d);
    if (files == 0) {
        fprintf(stderr, "%s: corpus %s is empty\n", argv[0], argv[1]);
        return 66;
    }
    printf("%s: %d corpus files, %d mutations each, no crash\n", argv[0], files, mutations);
    return 0;
}
