/* NumPy .npy reading and writing (src/io/npy.c) against files written by
 * numpy 1.24's np.save (tools/gen_io_fixtures.py npy_arrays()). */
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "test_util.h"

static void *slurp(const char *path, size_t *size) {
    void *buf;
    if (mloc_read_file(NULL, path, &buf, size) != MLOC_OK) fail_msg("cannot read %s", path);
    return buf;
}

static void expect_error(mloc_ctx *ctx, mloc_status st, mloc_status want, const char *a,
                         const char *b) {
    const char *msg = mloc_ctx_error(ctx);
    printf("  %s: %s\n", mloc_status_name(st), msg);
    assert_int_equal(st, want);
    if (a && !strstr(msg, a)) fail_msg("message '%s' lacks '%s'", msg, a);
    if (b && !strstr(msg, b)) fail_msg("message '%s' lacks '%s'", msg, b);
}

/* The fixture arrays, as gen_io_fixtures.py builds them. */
typedef struct {
    const char *name;
    mloc_dtype dtype;
    int ndim;
    int64_t shape[3];
    const void *data;
} npy_case;

static const float A_F4[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
static const double A_F8[5] = {0.1, -2.5, 1e300, 0.0, 7.0};
static const int64_t A_I8 = -42;
static const uint8_t A_U1[8] = {0, 31, 62, 93, 124, 155, 186, 217};
static const int64_t A_BIG[3] = {12345678, 12345679, 12345680};

static const npy_case cases[] = {
    {"a_f4", MLOC_DTYPE_F32, 2, {2, 3}, A_F4},
    {"a_f8", MLOC_DTYPE_F64, 1, {5}, A_F8},
    {"a_i8", MLOC_DTYPE_I64, 0, {0}, &A_I8},
    {"a_i4", MLOC_DTYPE_I32, 2, {0, 3}, NULL},
    {"a_u1", MLOC_DTYPE_U8, 3, {2, 2, 2}, A_U1},
    {"a_big_dim", MLOC_DTYPE_I64, 2, {3, 1}, A_BIG},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static void check_array(const npy_case *c, mloc_dtype dtype, int ndim, const int64_t *shape,
                        const void *data) {
    assert_int_equal(dtype, c->dtype);
    assert_int_equal(ndim, c->ndim);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        assert_int_equal(shape[d], c->shape[d]);
        numel *= shape[d];
    }
    assert_non_null(data);
    if (numel) assert_memory_equal(data, c->data, (size_t)numel * mloc_dtype_size(dtype));
}

static void test_read_numpy_files(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    for (size_t i = 0; i < N_CASES; i++) {
        char name[64];
        snprintf(name, sizeof name, "io/%s.npy", cases[i].name);
        mloc_dtype dtype;
        int ndim;
        int64_t shape[MLOC_MAX_DIMS];
        void *data;
        assert_int_equal(mloc_npy_read(ctx, test_fixture(name), &dtype, &ndim, shape, &data), MLOC_OK);
        check_array(&cases[i], dtype, ndim, shape, data);
        free(data);
    }
    /* Format 2.0 (uint32 header length). */
    mloc_dtype dtype;
    int ndim;
    int64_t shape[MLOC_MAX_DIMS];
    double *d;
    assert_int_equal(mloc_npy_read(ctx, test_fixture("io/a_v2.npy"), &dtype, &ndim, shape,
                                   (void **)&d), MLOC_OK);
    assert_int_equal(dtype, MLOC_DTYPE_F64);
    assert_int_equal(ndim, 1);
    assert_int_equal(shape[0], 4);
    for (int k = 0; k < 4; k++) assert_true(d[k] == k);
    free(d);
    mloc_ctx_destroy(ctx);
}

/* Our files are byte-identical to numpy's for the same arrays. */
static void test_write_matches_numpy(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("npy_write");
    for (size_t i = 0; i < N_CASES; i++) {
        char path[4200], name[64];
        snprintf(path, sizeof path, "%s/%s.npy", dir, cases[i].name);
        snprintf(name, sizeof name, "io/%s.npy", cases[i].name);
        assert_int_equal(mloc_npy_write(ctx, path, cases[i].dtype, cases[i].ndim, cases[i].shape,
                                        cases[i].data), MLOC_OK);
        size_t nw, ng;
        void *want = slurp(test_fixture(name), &nw), *got = slurp(path, &ng);
        if (ng != nw || memcmp(want, got, nw) != 0)
            fail_msg("%s: %zu bytes differ from numpy's %zu", cases[i].name, ng, nw);
        free(want);
        free(got);
    }
    mloc_ctx_destroy(ctx);
}

static void test_roundtrip_dims(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    char path[4200];
    snprintf(path, sizeof path, "%s/x.npy", test_tmpdir("npy_rt"));
    int32_t v[2 * 1 * 3 * 1 * 2 * 2];
    for (int i = 0; i < 24; i++) v[i] = i * 1000 - 7;
    const int64_t shape6[6] = {2, 1, 3, 1, 2, 2}, big[1] = {1000000};
    assert_int_equal(mloc_npy_write(ctx, path, MLOC_DTYPE_I32, 6, shape6, v), MLOC_OK);
    mloc_dtype dtype;
    int ndim;
    int64_t shape[MLOC_MAX_DIMS];
    void *data;
    assert_int_equal(mloc_npy_read(ctx, path, &dtype, &ndim, shape, &data), MLOC_OK);
    assert_int_equal(dtype, MLOC_DTYPE_I32);
    assert_int_equal(ndim, 6);
    assert_memory_equal(shape, shape6, sizeof shape6);
    assert_memory_equal(data, v, sizeof v);
    free(data);
    /* A long axis 0 uses the spare header room numpy leaves; still 64-aligned. */
    float *z = calloc(1000000, sizeof *z);
    assert_int_equal(mloc_npy_write(ctx, path, MLOC_DTYPE_F32, 1, big, z), MLOC_OK);
    size_t n;
    unsigned char *b = slurp(path, &n);
    size_t hlen = b[8] | (size_t)b[9] << 8;
    assert_int_equal((10 + hlen) % 64, 0);
    assert_int_equal(n, 10 + hlen + 4000000);
    assert_int_equal(b[10 + hlen - 1], '\n');
    free(b);
    free(z);
    assert_int_equal(mloc_npy_write(ctx, path, MLOC_DTYPE_F16, 1, big, NULL), MLOC_ERR_USAGE);
    mloc_ctx_destroy(ctx);
}

static void test_malformed(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    size_t n;
    unsigned char *good = slurp(test_fixture("io/a_f4.npy"), &n);
    unsigned char *b = malloc(n + 8);
    mloc_dtype dtype;
    int ndim;
    int64_t shape[MLOC_MAX_DIMS];
    void *data = (void *)1;

    memcpy(b, good, n);
    b[1] = 'X';
    expect_error(ctx, mloc_npy_read_memory(ctx, b, n, "m.npy", &dtype, &ndim, shape, &data),
                 MLOC_ERR_DATA, "m.npy", "magic");
    assert_null(data);
    memcpy(b, good, n);
    b[6] = 4;
    expect_error(ctx, mloc_npy_read_memory(ctx, b, n, "m.npy", &dtype, &ndim, shape, &data),
                 MLOC_ERR_UNSUPPORTED, "version 4.0", NULL);
    expect_error(ctx, mloc_npy_read_memory(ctx, good, n - 4, "m.npy", &dtype, &ndim, shape, &data),
                 MLOC_ERR_DATA, "20 data bytes", "need 24");
    memcpy(b, good, n);
    memset(b + n, 0, 4);
    expect_error(ctx, mloc_npy_read_memory(ctx, b, n + 4, "m.npy", &dtype, &ndim, shape, &data),
                 MLOC_ERR_DATA, "28 data bytes", NULL);
    expect_error(ctx, mloc_npy_read_memory(ctx, good, 60, "m.npy", &dtype, &ndim, shape, &data),
                 MLOC_ERR_DATA, "header length 118 exceeds", NULL);
    expect_error(ctx, mloc_npy_read_memory(ctx, good, 9, "m.npy", &dtype, &ndim, shape, &data),
                 MLOC_ERR_DATA, "truncated: 9 bytes", NULL);

    /* Header edits of the same length. */
    static const struct {
        const char *from, *to;
        mloc_status st;
        const char *msg;
    } edits[] = {
        {"'<f4'", "'>f4'", MLOC_ERR_UNSUPPORTED, "dtype '>f4'"},
        {"'<f4'", "'<c8'", MLOC_ERR_UNSUPPORTED, "dtype '<c8'"},
        {"False", "True ", MLOC_ERR_UNSUPPORTED, "Fortran"},
        {"False", "Fals ", MLOC_ERR_DATA, "malformed .npy header"},
        {"'shape'", "'shap' ", MLOC_ERR_DATA, "malformed .npy header"},
        {"(2, 3)", "(2,-3)", MLOC_ERR_DATA, "malformed .npy header"},
        {"(2, 3)", "(2, 4)", MLOC_ERR_DATA, "need 32"},
        {"(2, 3)", "(2 3) ", MLOC_ERR_DATA, "malformed .npy header"},
        {"}", "x", MLOC_ERR_DATA, "malformed .npy header"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        memcpy(b, good, n);
        char *at = memmem(b, n, edits[i].from, strlen(edits[i].from));
        assert_non_null(at);
        memcpy(at, edits[i].to, strlen(edits[i].to));
        expect_error(ctx, mloc_npy_read_memory(ctx, b, n, "m.npy", &dtype, &ndim, shape, &data),
                     edits[i].st, "m.npy: ", edits[i].msg);
        assert_null(data);
    }
    expect_error(ctx, mloc_npy_read(ctx, "/nonexistent.npy", &dtype, &ndim, shape, &data),
                 MLOC_ERR_NOINPUT, "/nonexistent.npy", NULL);
    free(b);
    free(good);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_numpy_files),
        cmocka_unit_test(test_write_matches_numpy),
        cmocka_unit_test(test_roundtrip_dims),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
