#include "memloc/rng.h"

#include <math.h>
#include <string.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void mloc_philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t mloc_rng_stream_id(const char *tag, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a over the tag */
    for (const unsigned char *p = (const unsigned char *)tag; p && *p; p++) {
        h ^= *p;
        h *= 0x100000001B3ull;
    }
    h = splitmix64(h ^ splitmix64(a));
    h = splitmix64(h ^ splitmix64(b + 0x632BE59BD9B4E019ull));
    h = splitmix64(h ^ splitmix64(c + 0x85157AF5ull));
    return h;
}

void mloc_rng_init(mloc_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t k = splitmix64(seed);
    r->key[0] = (uint32_t)k;
    r->key[1] = (uint32_t)(k >> 32);
    r->stream = stream;
    r->counter = 0;
    r->used = 4;
}

void mloc_rng_init_tag(mloc_rng *r, uint64_t seed, const char *tag, uint64_t a,
                       uint64_t b, uint64_t c) {
    mloc_rng_init(r, seed, mloc_rng_stream_id(tag, a, b, c));
}

static void refill(mloc_rng *r) {
    uint32_t ctr[4] = {(uint32_t)r->counter, (uint32_t)(r->counter >> 32),
                       (uint32_t)r->stream, (uint32_t)(r->stream >> 32)};
    mloc_philox4x32_10(r->buf, ctr, r->key);
    r->counter++;
    r->used = 0;
}

uint64_t mloc_rng_tell(const mloc_rng *r) {
    /* counter blocks generated, minus words still unread in buf */
    return r->counter * 4 - (uint64_t)(4 - r->used);
}

void mloc_rng_seek(mloc_rng *r, uint64_t words) {
    r->counter = words / 4;
    r->used = 4;
    int skip = (int)(words % 4);
    if (skip) {
        refill(r);
        r->used = skip;
    }
}

uint32_t mloc_rng_u32(mloc_rng *r) {
    if (r->used >= 4) refill(r);
    return r->buf[r->used++];
}

uint64_t mloc_rng_u64(mloc_rng *r) {
    uint64_t hi = mloc_rng_u32(r);
    return (hi << 32) | mloc_rng_u32(r);
}

float mloc_rng_uniformf(mloc_rng *r) {
    return (float)(mloc_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

double mloc_rng_uniform(mloc_rng *r) {
    return (double)(mloc_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

int64_t mloc_rng_int(mloc_rng *r, int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    uint64_t range = (uint64_t)(hi - lo) + 1;
    if (range == 0) return (int64_t)mloc_rng_u64(r); /* full 64-bit range */
    uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t x;
    do {
        x = mloc_rng_u64(r);
    } while (x >= limit);
    return lo + (int64_t)(x % range);
}

double mloc_rng_normal(mloc_rng *r) {
    double u1 = mloc_rng_uniform(r), u2 = mloc_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void mloc_rng_permutation(mloc_rng *r, int64_t *perm, int64_t n) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = mloc_rng_int(r, 0, i);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
