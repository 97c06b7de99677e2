/* Counter-based random numbers (Philox4x32-10, Salmon et al. SC'11).
 *
 * Every consumer of randomness gets its own stream derived from the root seed
 * and a purpose: init of a named tensor, the data split, the epoch's shuffle,
 * the augmentation of (epoch, sample, view), ... Because a stream is a pure
 * function of (seed, stream id, position), results do not depend on thread
 * count or on the order in which streams are used, and a stream's position is
 * a single integer that checkpoints save and restore. */
#ifndef MEMLOC_RNG_H
#define MEMLOC_RNG_H

#include <stdint.h>

typedef struct {
    uint32_t key[2];     /* from the root seed */
    uint64_t stream;     /* which stream */
    uint64_t counter;    /* blocks of 4 words consumed */
    uint32_t buf[4];
    int used;            /* words of buf already returned (4: empty) */
} mloc_rng;

/* Stream ids: a 64-bit hash of a purpose tag and up to three integers, e.g.
 * mloc_rng_stream_id("aug", epoch, sample, view). */
uint64_t mloc_rng_stream_id(const char *tag, uint64_t a, uint64_t b, uint64_t c);

void mloc_rng_init(mloc_rng *r, uint64_t seed, uint64_t stream);
/* Shorthand for init with mloc_rng_stream_id(tag, a, b, c). */
void mloc_rng_init_tag(mloc_rng *r, uint64_t seed, const char *tag, uint64_t a,
                       uint64_t b, uint64_t c);

/* Position (in 32-bit words) for checkpoints; seek restores it. */
uint64_t mloc_rng_tell(const mloc_rng *r);
void mloc_rng_seek(mloc_rng *r, uint64_t words);

uint32_t mloc_rng_u32(mloc_rng *r);
uint64_t mloc_rng_u64(mloc_rng *r);
/* Uniform in [0, 1) with 24 random bits (float) / 53 bits (double). */
float mloc_rng_uniformf(mloc_rng *r);
double mloc_rng_uniform(mloc_rng *r);
/* Uniform integer in [lo, hi] inclusive, unbiased (rejection). */
int64_t mloc_rng_int(mloc_rng *r, int64_t lo, int64_t hi);
/* Standard normal (Box-Muller, double precision). */
double mloc_rng_normal(mloc_rng *r);
/* Fisher-Yates permutation of 0..n-1 into perm. */
void mloc_rng_permutation(mloc_rng *r, int64_t *perm, int64_t n);

/* The raw block function, exposed for tests against the Random123 vectors. */
void mloc_philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

#endif
