/* safetensors reading, writing and table load/save (src/io/safetensors.c).
 *
 * Fixtures (tools/gen_io_fixtures.py): layout.safetensors is what tools/st.py
 * (the reference writer's layout) writes for layout_tensors() below, so a
 * byte-identical C file is loadable by every safetensors reader;
 * conv.safetensors holds numpy's float16 and torch's bfloat16 roundings of
 * float32 values; resnet9_w0125.safetensors is a PyTorch ResNet9 state_dict
 * with per-tensor sums computed by torch in resnet9_w0125.json. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "test_util.h"

/* ---- helpers ---------------------------------------------------------------- */

static void *slurp(const char *path, size_t *size) {
    void *buf;
    if (mloc_read_file(NULL, path, &buf, size) != MLOC_OK) fail_msg("cannot read %s", path);
    return buf;
}

static void assert_same_bytes(const char *want_path, const char *got_path) {
    size_t nw, ng;
    unsigned char *w = slurp(want_path, &nw), *g = slurp(got_path, &ng);
    size_t at = 0;
    while (at < nw && at < ng && w[at] == g[at]) at++;
    if (at != nw || nw != ng)
        printf("%s vs %s: sizes %zu and %zu, first difference at byte %zu\n", want_path,
               got_path, nw, ng, at);
    free(w);
    free(g);
    assert_int_equal(ng, nw);
    assert_int_equal(at, nw);
}

/* Fails unless st is `want` and the context's message contains every one
 * of the NULL-terminated substrings. */
static void expect_error(mloc_ctx *ctx, mloc_status st, mloc_status want, ...) {
    const char *msg = mloc_ctx_error(ctx);
    printf("  %s: %s\n", mloc_status_name(st), msg);
    assert_int_equal(st, want);
    va_list ap;
    va_start(ap, want);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(msg, s)) fail_msg("message '%s' lacks '%s'", msg, s);
    va_end(ap);
}

/* 8-byte length, the header, then data_len zero bytes. */
static unsigned char *st_bytes(const char *header, size_t data_len, size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_len;
    unsigned char *b = calloc(1, *size);
    uint64_t n64 = n;
    memcpy(b, &n64, 8);
    memcpy(b + 8, header, n);
    return b;
}

/* ---- the layout fixture's tensors (tools/gen_io_fixtures.py layout_tensors) -- */

static const float F16_SRC[10] = {0x1.002p+0f, 0x1.006p+0f, 0x1.ffep+15f, 0x1.ffcp+15f,
                                  0x1p-24f,    0x1p-25f,    0x1.8p-25f,   -0x0p+0f,
                                  -0x1.555556p-3f, 0x1.4p+3f};
static const uint16_t F16_WANT[10] = {0x3c00, 0x3c02, 0x7c00, 0x7bff, 0x0001,
                                      0x0000, 0x0001, 0x8000, 0xb155, 0x4900};
static const float BF16_SRC[4] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -3.140625f, 0x1.2p-133f};

typedef struct {
    float w[12], scalar;
    int64_t count, ids[5];
    uint16_t h[10], b[4];
    double d[2];
    int32_t i[3];
    uint8_t u[4];
} layout;

static void layout_fill(layout *L) {
    for (int k = 0; k < 12; k++) L->w[k] = (float)(k - 5) * 0.375f;
    L->scalar = 2.5f;
    L->count = 1234567890123LL;
    for (int k = 0; k < 5; k++) L->ids[k] = (int64_t)k * k - 7;
    mloc_f32_to_f16(L->h, F16_SRC, 10);
    mloc_f32_to_bf16(L->b, BF16_SRC, 4);
    L->d[0] = 1.0 / 3.0;
    L->d[1] = -0x1p60;
    L->i[0] = -1, L->i[1] = 0, L->i[2] = 2147483647;
    L->u[0] = 0, L->u[1] = 1, L->u[2] = 128, L->u[3] = 255;
}

/* Added in no particular order: the writer sorts. */
static void layout_add(mloc_st_writer *w, const layout *L) {
    assert_int_equal(mloc_st_writer_add(w, "u.u8", MLOC_DTYPE_U8, 1, (int64_t[]){4}, L->u), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "h.f16", MLOC_DTYPE_F16, 2, (int64_t[]){2, 5}, L->h), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "w.f32", MLOC_DTYPE_F32, 2, (int64_t[]){3, 4}, L->w), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "zero", MLOC_DTYPE_F32, 3, (int64_t[]){2, 0, 3}, L->w), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "count", MLOC_DTYPE_I64, 0, NULL, &L->count), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "d.f64", MLOC_DTYPE_F64, 1, (int64_t[]){2}, L->d), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "b.bf16", MLOC_DTYPE_BF16, 1, (int64_t[]){4}, L->b), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "scalar.f32", MLOC_DTYPE_F32, 0, NULL, &L->scalar), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "i.i32", MLOC_DTYPE_I32, 1, (int64_t[]){3}, L->i), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "ids", MLOC_DTYPE_I64, 1, (int64_t[]){5}, L->ids), MLOC_OK);
}

static const char *write_layout(mloc_ctx *ctx, const layout *L, const char *dir) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/layout.safetensors", dir);
    mloc_st_writer *w;
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    layout_add(w, L);
    assert_int_equal(mloc_st_writer_meta(w, "memloc", "draft"), MLOC_OK);
    assert_int_equal(mloc_st_writer_meta(w, "format", "pt"), MLOC_OK);
    assert_int_equal(mloc_st_writer_meta(w, "memloc", "test"), MLOC_OK); /* replaces */
    assert_int_equal(mloc_st_writer_save(w, path), MLOC_OK);
    mloc_st_writer_free(w);
    return path;
}

static void check_tensor(const mloc_st_file *f, const char *name, mloc_dtype dtype, int ndim,
                         const int64_t *shape, const void *data) {
    const mloc_st_tensor *t = mloc_st_find(f, name);
    if (!t) fail_msg("no tensor %s", name);
    assert_int_equal(t->dtype, dtype);
    assert_int_equal(t->ndim, ndim);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        assert_int_equal(t->shape[d], shape[d]);
        numel *= shape[d];
    }
    assert_int_equal(t->numel, numel);
    assert_int_equal(t->nbytes, (size_t)numel * mloc_dtype_size(dtype));
    if (t->nbytes) assert_memory_equal(t->data, data, t->nbytes);
}

/* ---- round trip and layout ---------------------------------------------------- */

static void test_roundtrip(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    layout L;
    layout_fill(&L);
    assert_memory_equal(L.h, F16_WANT, sizeof F16_WANT);
    const char *path = write_layout(ctx, &L, test_tmpdir("st_roundtrip"));

    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
    assert_int_equal(mloc_st_count(f), 10);
    assert_string_equal(mloc_st_path(f), path);
    check_tensor(f, "w.f32", MLOC_DTYPE_F32, 2, (int64_t[]){3, 4}, L.w);
    check_tensor(f, "scalar.f32", MLOC_DTYPE_F32, 0, NULL, &L.scalar);
    check_tensor(f, "count", MLOC_DTYPE_I64, 0, NULL, &L.count);
    check_tensor(f, "ids", MLOC_DTYPE_I64, 1, (int64_t[]){5}, L.ids);
    check_tensor(f, "h.f16", MLOC_DTYPE_F16, 2, (int64_t[]){2, 5}, L.h);
    check_tensor(f, "b.bf16", MLOC_DTYPE_BF16, 1, (int64_t[]){4}, L.b);
    check_tensor(f, "zero", MLOC_DTYPE_F32, 3, (int64_t[]){2, 0, 3}, NULL);
    check_tensor(f, "d.f64", MLOC_DTYPE_F64, 1, (int64_t[]){2}, L.d);
    check_tensor(f, "i.i32", MLOC_DTYPE_I32, 1, (int64_t[]){3}, L.i);
    check_tensor(f, "u.u8", MLOC_DTYPE_U8, 1, (int64_t[]){4}, L.u);
    assert_null(mloc_st_find(f, "nope"));
    assert_string_equal(mloc_st_metadata(f, "memloc"), "test");
    assert_string_equal(mloc_st_metadata(f, "format"), "pt");
    assert_null(mloc_st_metadata(f, "nope"));

    /* mloc_st_get walks the data buffer in order; the reference order puts
     * 8-byte dtypes first (I64 before F64) and BF16 before F16. */
    const char *order[10] = {"count", "ids", "d.f64", "scalar.f32", "w.f32", "zero",
                             "i.i32", "b.bf16", "h.f16", "u.u8"};
    for (int i = 0; i < 10; i++) {
        assert_string_equal(mloc_st_get(f, i)->name, order[i]);
        if (i) assert_true((const char *)mloc_st_get(f, i)->data >=
                           (const char *)mloc_st_get(f, i - 1)->data);
        const mloc_st_tensor *t = mloc_st_get(f, i);
        assert_int_equal((uintptr_t)t->data % mloc_dtype_size(t->dtype), 0);
    }
    assert_null(mloc_st_get(f, 10));

    /* Typed reads convert: F16/BF16/F64 -> F32, F32 -> F64, I32 -> I64. */
    float h[10], b[4], d32[2], w[12];
    double w64[12];
    int64_t i64[3], scalar;
    assert_int_equal(mloc_st_read_f32(ctx, h, f, "h.f16", 2, (int64_t[]){2, 5}), MLOC_OK);
    for (int k = 0; k < 10; k++) {
        float want = k == 2 ? INFINITY : k == 0 ? 1.0f : k == 1 ? 1.0f + 0x1p-9f
                   : k == 5 ? 0.0f : k == 6 ? 0x1p-24f : F16_SRC[k];
        if (k == 8) want = -0x1.554p-3f;
        assert_true(h[k] == want);
    }
    assert_true(signbit(h[7]));
    assert_int_equal(mloc_st_read_f32(ctx, b, f, "b.bf16", 1, (int64_t[]){4}), MLOC_OK);
    assert_true(b[0] == 1.0f && b[1] == 1.0f + 0x1p-6f && b[2] == -3.140625f);
    assert_int_equal(mloc_st_read_f32(ctx, d32, f, "d.f64", -1, NULL), MLOC_OK);
    assert_true(d32[0] == (float)(1.0 / 3.0) && d32[1] == -0x1p60f);
    assert_int_equal(mloc_st_read_f32(ctx, w, f, "w.f32", 2, (int64_t[]){3, 4}), MLOC_OK);
    assert_memory_equal(w, L.w, sizeof w);
    assert_int_equal(mloc_st_read_f64(ctx, w64, f, "w.f32", 2, (int64_t[]){3, 4}), MLOC_OK);
    for (int k = 0; k < 12; k++) assert_true(w64[k] == (double)L.w[k]);
    assert_int_equal(mloc_st_read_i64(ctx, i64, f, "i.i32", 1, (int64_t[]){3}), MLOC_OK);
    assert_true(i64[0] == -1 && i64[1] == 0 && i64[2] == 2147483647);
    assert_int_equal(mloc_st_read_i64(ctx, &scalar, f, "count", 0, NULL), MLOC_OK);
    assert_true(scalar == 1234567890123LL);
    assert_int_equal(mloc_st_read_f32(ctx, w, f, "zero", 3, (int64_t[]){2, 0, 3}), MLOC_OK);

    /* Shape, dtype and name mismatches name the tensor and both sides. */
    expect_error(ctx, mloc_st_read_f32(ctx, w, f, "w.f32", 2, (int64_t[]){4, 3}), MLOC_ERR_DATA,
                 "w.f32", "expected shape [4,3], file has [3,4]", NULL);
    expect_error(ctx, mloc_st_read_f32(ctx, w, f, "w.f32", 0, NULL), MLOC_ERR_DATA,
                 "expected shape [], file has [3,4]", NULL);
    expect_error(ctx, mloc_st_read_f32(ctx, w, f, "ids", 1, (int64_t[]){5}), MLOC_ERR_DATA,
                 "'ids'", "dtype I64", NULL);
    expect_error(ctx, mloc_st_read_i64(ctx, i64, f, "w.f32", -1, NULL), MLOC_ERR_DATA,
                 "'w.f32'", "dtype F32", NULL);
    expect_error(ctx, mloc_st_read_f64(ctx, w64, f, "u.u8", -1, NULL), MLOC_ERR_DATA,
                 "dtype U8", NULL);
    expect_error(ctx, mloc_st_read_f32(ctx, w, f, "nope", -1, NULL), MLOC_ERR_DATA,
                 path, "no tensor 'nope'", NULL);
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

/* The same tensors written by tools/st.py: identical bytes. */
static void test_matches_st_py(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    layout L;
    layout_fill(&L);
    const char *path = write_layout(ctx, &L, test_tmpdir("st_layout"));
    assert_same_bytes(test_fixture("io/layout.safetensors"), path);

    /* No tensors at all: "{}" padded to 8 bytes, as the reference writes. */
    char empty[4200];
    snprintf(empty, sizeof empty, "%s/empty.safetensors", test_tmpdir("st_empty"));
    mloc_st_writer *w;
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    assert_int_equal(mloc_st_writer_save(w, empty), MLOC_OK);
    mloc_st_writer_free(w);
    size_t n;
    unsigned char *b = slurp(empty, &n);
    static const unsigned char want[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    assert_int_equal(n, 16);
    assert_memory_equal(b, want, 16);
    free(b);
    mloc_ctx_destroy(ctx);
}

/* ---- conversions ---------------------------------------------------------------- */

static int same_or_both_nan16(uint16_t a, uint16_t b) {
    int nan_a = (a & 0x7c00) == 0x7c00 && (a & 0x3ff), nan_b = (b & 0x7c00) == 0x7c00 && (b & 0x3ff);
    return nan_a || nan_b ? nan_a && nan_b : a == b;
}

static void test_conversions_match_numpy_and_torch(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture("io/conv.safetensors")), MLOC_OK);
    const mloc_st_tensor *x = mloc_st_find(f, "x"), *x16 = mloc_st_find(f, "x_f16");
    const mloc_st_tensor *xb = mloc_st_find(f, "x_bf16"), *h = mloc_st_find(f, "h");
    assert_non_null(x);
    assert_true(x16 && xb && h && x->numel > 500);
    assert_int_equal(x16->dtype, MLOC_DTYPE_F16);
    assert_int_equal(xb->dtype, MLOC_DTYPE_BF16);
    int64_t n = x->numel, nh = h->numel;
    float *xs = malloc((size_t)n * 4), *hf = malloc((size_t)nh * 4), *hwant = malloc((size_t)nh * 4);
    uint16_t *got = malloc((size_t)n * 2), *want = malloc((size_t)n * 2);
    assert_int_equal(mloc_st_read_f32(ctx, xs, f, "x", 1, &n), MLOC_OK);

    int bad = 0;
    mloc_f32_to_f16(got, xs, n);
    memcpy(want, x16->data, (size_t)n * 2);
    for (int64_t i = 0; i < n; i++)
        if (!same_or_both_nan16(got[i], want[i]) && bad++ < 5)
            printf("  f16(%a): got %04x, numpy %04x\n", xs[i], got[i], want[i]);
    mloc_f32_to_bf16(got, xs, n);
    memcpy(want, xb->data, (size_t)n * 2);
    for (int64_t i = 0; i < n; i++)
        if (!(isnan(xs[i]) ? (want[i] & 0x7fff) > 0x7f80 && got[i] == 0x7fc0 : got[i] == want[i]) &&
            bad++ < 10)
            printf("  bf16(%a): got %04x, torch %04x\n", xs[i], got[i], want[i]);
    /* Widening: half bit patterns against numpy's astype(float32). */
    uint16_t *hb = malloc((size_t)nh * 2);
    memcpy(hb, h->data, (size_t)nh * 2);
    mloc_f16_to_f32(hf, hb, nh);
    assert_int_equal(mloc_st_read_f32(ctx, hwant, f, "h_f32", 1, &nh), MLOC_OK);
    for (int64_t i = 0; i < nh; i++) {
        int ok = isnan(hwant[i]) ? isnan(hf[i]) : memcmp(&hf[i], &hwant[i], 4) == 0;
        if (!ok && bad++ < 15) printf("  f32(half %04x): got %a, numpy %a\n", hb[i], hf[i], hwant[i]);
    }
    printf("%lld float32 values, %lld half patterns: %d mismatches\n", (long long)n,
           (long long)nh, bad);
    assert_int_equal(bad, 0);
    free(xs), free(hf), free(hwant), free(got), free(want), free(hb);
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

/* Every half and bfloat16 widens exactly and narrows back to itself. */
static void test_half_exhaustive(void **state) {
    (void)state;
    static uint16_t bits[65536], back[65536];
    static float f[65536];
    for (int i = 0; i < 65536; i++) bits[i] = (uint16_t)i;
    mloc_f16_to_f32(f, bits, 65536);
    mloc_f32_to_f16(back, f, 65536);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
        int nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
        if (nan ? !isnan(f[i]) || !same_or_both_nan16(back[i], bits[i]) : back[i] != bits[i]) bad++;
        /* Positive finite halves widen to increasing floats. */
        if (i > 0 && i <= 0x7c00 && !(f[i] > f[i - 1])) bad++;
    }
    mloc_bf16_to_f32(f, bits, 65536);
    mloc_f32_to_bf16(back, f, 65536);
    for (int i = 0; i < 65536; i++) {
        int nan = (i & 0x7f80) == 0x7f80 && (i & 0x7f);
        if (nan ? !isnan(f[i]) || back[i] != 0x7fc0 : back[i] != bits[i]) bad++;
    }
    assert_int_equal(bad, 0);
}

/* ---- the PyTorch ResNet9 state_dict ---------------------------------------------- */

static mloc_role role_of(const char *name) {
    static const struct { const char *suffix; mloc_role role; } roles[] = {
        {"conv.weight", MLOC_ROLE_WEIGHT},          {"conv.bias", MLOC_ROLE_BIAS},
        {"batch.weight", MLOC_ROLE_NORM_WEIGHT},    {"batch.bias", MLOC_ROLE_NORM_BIAS},
        {"running_mean", MLOC_ROLE_RUNNING_MEAN},   {"running_var", MLOC_ROLE_RUNNING_VAR},
        {"num_batches_tracked", MLOC_ROLE_NUM_BATCHES},
    };
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        size_t k = strlen(roles[i].suffix);
        if (n >= k && strcmp(name + n - k, roles[i].suffix) == 0) return roles[i].role;
    }
    fail_msg("no role for %s", name);
    return MLOC_ROLE_WEIGHT;
}

static void test_resnet9_state_dict(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    json_t *doc;
    assert_int_equal(mloc_json_load(ctx, test_fixture("io/resnet9_w0125.json"), &doc), MLOC_OK);
    json_t *want = json_object_get(doc, "tensors");
    assert_int_equal(json_object_size(want), 56);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture("io/resnet9_w0125.safetensors")), MLOC_OK);
    assert_int_equal(mloc_st_count(f), 56);
    assert_string_equal(mloc_st_metadata(f, "format"), "pt");

    mloc_table tab;
    mloc_table_init(&tab);
    const char *name;
    json_t *w;
    int checked = 0, counters = 0;
    json_object_foreach(want, name, w) {
        const mloc_st_tensor *t = mloc_st_find(f, name);
        if (!t) fail_msg("no tensor %s", name);
        assert_string_equal(mloc_dtype_name(t->dtype), json_string_value(json_object_get(w, "dtype")));
        json_t *shape = json_object_get(w, "shape");
        int64_t dims[MLOC_MAX_DIMS];
        assert_int_equal(t->ndim, (int)json_array_size(shape));
        for (int d = 0; d < t->ndim; d++) dims[d] = json_integer_value(json_array_get(shape, d));
        int index = tab.n;
        assert_int_equal(mloc_table_add(&tab, name, role_of(name), MLOC_GROUP_ENCODER, 0, t->ndim,
                                        dims), index);
        double sum = 0, first, last;
        if (t->dtype == MLOC_DTYPE_I64) {
            /* num_batches_tracked: I64 shape [], 3 after three training forwards */
            int64_t v;
            assert_int_equal(mloc_st_read_i64(ctx, &v, f, name, 0, NULL), MLOC_OK);
            assert_true(strstr(name, "num_batches_tracked") != NULL);
            assert_int_equal(v, 3);
            sum = first = last = (double)v;
            counters++;
        } else {
            float *v = malloc((size_t)t->numel * sizeof *v);
            assert_int_equal(mloc_st_read_f32(ctx, v, f, name, t->ndim, dims), MLOC_OK);
            for (int64_t i = 0; i < t->numel; i++) sum += v[i];
            first = v[0];
            last = v[t->numel - 1];
            free(v);
        }
        double ws = json_number_value(json_object_get(w, "sum"));
        if (!(fabs(sum - ws) <= 1e-9 + 1e-9 * fabs(ws))) fail_msg("%s: sum %.17g, torch %.17g", name, sum, ws);
        assert_true(first == json_number_value(json_object_get(w, "first")));
        assert_true(last == json_number_value(json_object_get(w, "last")));
        checked++;
    }
    assert_int_equal(checked, 56);
    assert_int_equal(counters, 8);

    /* Through the tensor table, then back out: the same bytes PyTorch's
     * state_dict was saved as (tools/check_torch_load.py loads this copy). */
    mloc_store s;
    assert_int_equal(mloc_store_alloc(ctx, &s, &tab), MLOC_OK);
    assert_int_equal(mloc_table_load(ctx, &tab, &s, f, MLOC_LOAD_STRICT), MLOC_OK);
    int k = mloc_table_find(&tab, "layer3_residual2.batch.num_batches_tracked");
    assert_int_equal(*(int64_t *)mloc_store_ptr(&s, &tab, k), 3);
    k = mloc_table_find(&tab, "prep.conv.weight");
    assert_true(((float *)mloc_store_ptr(&s, &tab, k))[0] ==
                json_number_value(json_object_get(json_object_get(want, "prep.conv.weight"), "first")));
    char path[4200];
    snprintf(path, sizeof path, "%s/resnet9.safetensors", test_tmpdir("st_resnet9"));
    mloc_st_writer *wr;
    assert_int_equal(mloc_st_writer_create(ctx, &wr), MLOC_OK);
    assert_int_equal(mloc_table_add_to_writer(wr, &tab, &s, -1), MLOC_OK);
    assert_int_equal(mloc_st_writer_meta(wr, "format", "pt"), MLOC_OK);
    assert_int_equal(mloc_st_writer_save(wr, path), MLOC_OK);
    mloc_st_writer_free(wr);
    printf("wrote %s\n", path);
    assert_same_bytes(test_fixture("io/resnet9_w0125.safetensors"), path);

    mloc_store_free(&s);
    mloc_table_free(&tab);
    mloc_st_close(f);
    json_decref(doc);
    mloc_ctx_destroy(ctx);
}

/* ---- malformed files ----------------------------------------------------------------- */

#define A_ENTRY "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define T1 "{" A_ENTRY

static void test_malformed(void **state) {
    (void)state;
    static const struct {
        const char *what, *header;
        size_t data, raw_len; /* raw_len > 0: only that many bytes of the file */
        uint64_t n_override;  /* > 0: header length field */
        mloc_status st;
        const char *msg1, *msg2;
    } cases[] = {
        {"truncated", T1 "}", 8, 5, 0, MLOC_ERR_DATA, "truncated: 5 bytes", NULL},
        {"header > file", T1 "}", 8, 0, 1000, MLOC_ERR_DATA, "header length 1000 exceeds the file size", NULL},
        {"header > limit", T1 "}", 8, 0, 200000000, MLOC_ERR_DATA, "exceeds the limit", NULL},
        {"not '{'", " " T1 "}", 8, 0, 0, MLOC_ERR_DATA, "does not start with '{'", NULL},
        {"array", "[1,2]", 0, 0, 0, MLOC_ERR_DATA, "does not start with '{'", NULL},
        {"not JSON", T1 ",}", 8, 0, 0, MLOC_ERR_DATA, "not valid JSON", NULL},
        {"cut JSON", "{\"a\":{\"dtype\":", 0, 0, 0, MLOC_ERR_DATA, "not valid JSON", NULL},
        {"duplicate", T1 ",\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, 0, 0,
         MLOC_ERR_DATA, "duplicate object key", "\"a\""},
        {"unknown dtype", "{\"a\":{\"dtype\":\"F7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, 0,
         MLOC_ERR_DATA, "tensor 'a'", "unknown dtype 'F7'"},
        {"unsupported dtype", "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, 0, 0,
         MLOC_ERR_UNSUPPORTED, "tensor 'm'", "dtype BOOL is not supported"},
        {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,8]}}", 8, 0, 0,
         MLOC_ERR_DATA, "tensor 'a'", "negative dimension -3"},
        {"float dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, 0, 0,
         MLOC_ERR_DATA, "tensor 'a'", "shape entry 0 is not an integer"},
        {"too many dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, 0, 0,
         MLOC_ERR_UNSUPPORTED, "tensor 'a'", "7 dimensions"},
        {"overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
         0, 0, MLOC_ERR_DATA, "tensor 'a'", "overflows"},
        {"size mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20, 0, 0,
         MLOC_ERR_DATA, "tensor 'w'", "hold 20 bytes, but F32 [2,3] needs 24"},
        {"begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, 0, 0,
         MLOC_ERR_DATA, "tensor 'a'", "end before they begin"},
        {"bad offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, 0, 0,
         MLOC_ERR_DATA, "tensor 'a'", "data_offsets must be two non-negative integers"},
        {"negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, 0, 0,
         MLOC_ERR_DATA, "tensor 'a'", "data_offsets must be"},
        {"not an object", "{\"a\":5}", 0, 0, 0, MLOC_ERR_DATA, "tensor 'a'", "expected an object"},
        {"no dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, 0, MLOC_ERR_DATA,
         "tensor 'a'", "\"dtype\""},
        {"overlap", T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0, 0,
         MLOC_ERR_DATA, "tensor 'b'", "overlap tensor 'a'"},
        {"hole", T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20, 0, 0,
         MLOC_ERR_DATA, "tensor 'b'", "hole of 4 bytes"},
        {"not from 0", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0, 0,
         MLOC_ERR_DATA, "tensor 'a'", "hole of 4 bytes"},
        {"past the end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, 0, 0,
         MLOC_ERR_DATA, "tensor 'a'", "past the end of the 8-byte data buffer"},
        {"trailing", T1 "}", 12, 0, 0, MLOC_ERR_DATA, "4 trailing bytes", NULL},
        {"metadata value", "{\"__metadata__\":{\"k\":1}}", 0, 0, 0, MLOC_ERR_DATA,
         "__metadata__ 'k' is not a string", NULL},
        {"metadata type", "{\"__metadata__\":[]}", 0, 0, 0, MLOC_ERR_DATA, "__metadata__ is not an object", NULL},
        {"bad UTF-8", "{\"\xff\":{}}", 0, 0, 0, MLOC_ERR_DATA, "not valid JSON", NULL},
    };
    mloc_ctx *ctx = test_ctx(1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        printf("%s\n", cases[i].what);
        size_t size;
        unsigned char *b = st_bytes(cases[i].header, cases[i].data, &size);
        if (cases[i].n_override) memcpy(b, &cases[i].n_override, 8);
        if (cases[i].raw_len) size = cases[i].raw_len;
        mloc_st_file *f = (mloc_st_file *)1;
        mloc_status st = mloc_st_open_memory(ctx, &f, b, size, "bad.safetensors");
        assert_null(f);
        expect_error(ctx, st, cases[i].st, "bad.safetensors: ", cases[i].msg1, cases[i].msg2, NULL);
        free(b);
    }

    /* Zero-size tensors may share an offset; the header may be space-padded. */
    size_t size;
    unsigned char *b = st_bytes("{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                                "\"y\":{\"dtype\":\"I64\",\"shape\":[3,0],\"data_offsets\":[8,8]},"
                                A_ENTRY "}   ", 8, &size);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open_memory(ctx, &f, b, size, "ok"), MLOC_OK);
    assert_int_equal(mloc_st_count(f), 3);
    assert_string_equal(mloc_st_get(f, 0)->name, "a");
    mloc_st_close(f);
    free(b);

    expect_error(ctx, mloc_st_open(ctx, &f, "/nonexistent/x.safetensors"), MLOC_ERR_NOINPUT,
                 "/nonexistent/x.safetensors", NULL);
    mloc_ctx_destroy(ctx);
}

/* Every proper prefix of a valid file is rejected, naming the file. */
static void test_truncated_files(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    size_t n;
    unsigned char *b = slurp(test_fixture("io/layout.safetensors"), &n);
    for (size_t len = 0; len < n; len++) {
        mloc_st_file *f;
        mloc_status st = mloc_st_open_memory(ctx, &f, b, len, "cut");
        if (st != MLOC_ERR_DATA || strncmp(mloc_ctx_error(ctx), "cut: ", 5) != 0)
            fail_msg("prefix of %zu bytes: %s %s", len, mloc_status_name(st), mloc_ctx_error(ctx));
    }
    /* One on disk, cut inside the data. */
    char path[4200];
    snprintf(path, sizeof path, "%s/cut.safetensors", test_tmpdir("st_cut"));
    assert_int_equal(mloc_write_file_atomic(ctx, path, b, n - 3), MLOC_OK);
    mloc_st_file *f;
    expect_error(ctx, mloc_st_open(ctx, &f, path), MLOC_ERR_DATA, path, "past the end",
                 "truncated file?", NULL);
    free(b);
    mloc_ctx_destroy(ctx);
}

/* ---- writer errors ---------------------------------------------------------------------- */

static void test_writer_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    float v[2] = {1, 2};
    mloc_st_writer *w;
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "a", MLOC_DTYPE_F32, 1, (int64_t[]){2}, v), MLOC_OK);
    expect_error(ctx, mloc_st_writer_add(w, "a", MLOC_DTYPE_F32, 1, (int64_t[]){2}, v),
                 MLOC_ERR_USAGE, "duplicate tensor 'a'", NULL);
    expect_error(ctx, mloc_st_writer_add(w, "__metadata__", MLOC_DTYPE_F32, 0, NULL, v),
                 MLOC_ERR_USAGE, "'__metadata__' is reserved", NULL);
    expect_error(ctx, mloc_st_writer_add(w, "b", MLOC_DTYPE_F32, 1, (int64_t[]){-1}, v),
                 MLOC_ERR_USAGE, "'b'", "dimension -1", NULL);
    expect_error(ctx, mloc_st_writer_add(w, "c", MLOC_DTYPE_F32, 7, (int64_t[]){1, 1, 1, 1, 1, 1, 1}, v),
                 MLOC_ERR_USAGE, "'c'", "ndim 7", NULL);
    expect_error(ctx, mloc_st_writer_save(w, "/nonexistent/dir/x.safetensors"), MLOC_ERR_CANTCREAT,
                 "/nonexistent/dir/x.safetensors", NULL);
    mloc_st_writer_free(w);
    mloc_ctx_destroy(ctx);
}

/* ---- tables <-> files -------------------------------------------------------------------- */

static void small_table(mloc_table *tab) {
    mloc_table_init(tab);
    assert_int_equal(mloc_table_add(tab, "conv.weight", MLOC_ROLE_WEIGHT, MLOC_GROUP_ENCODER, 0, 4,
                                    (int64_t[]){4, 3, 3, 3}), 0);
    assert_int_equal(mloc_table_add(tab, "conv.bias", MLOC_ROLE_BIAS, MLOC_GROUP_ENCODER, 0, 1,
                                    (int64_t[]){4}), 1);
    assert_int_equal(mloc_table_add(tab, "bn.running_mean", MLOC_ROLE_RUNNING_MEAN,
                                    MLOC_GROUP_ENCODER, 1, 1, (int64_t[]){4}), 2);
    assert_int_equal(mloc_table_add(tab, "bn.num_batches_tracked", MLOC_ROLE_NUM_BATCHES,
                                    MLOC_GROUP_ENCODER, 1, 0, NULL), 3);
    assert_int_equal(mloc_table_add(tab, "head.weight", MLOC_ROLE_WEIGHT, MLOC_GROUP_HEAD, 2, 2,
                                    (int64_t[]){2, 4}), 4);
}

static void fill_store(const mloc_table *tab, mloc_store *s, float base) {
    for (int64_t i = 0; i < tab->numel[MLOC_BLOCK_PARAM]; i++) s->param[i] = base + 0.5f * (float)i;
    for (int64_t i = 0; i < tab->numel[MLOC_BLOCK_BUFFER]; i++) s->buffer[i] = base - (float)i;
    for (int64_t i = 0; i < tab->numel[MLOC_BLOCK_COUNTER]; i++) s->counter[i] = (int64_t)base + 7;
}

static int store_equal(const mloc_table *tab, const mloc_store *a, const mloc_store *b) {
    return memcmp(a->param, b->param, (size_t)tab->numel[MLOC_BLOCK_PARAM] * 4) == 0 &&
           memcmp(a->buffer, b->buffer, (size_t)tab->numel[MLOC_BLOCK_BUFFER] * 4) == 0 &&
           memcmp(a->counter, b->counter, (size_t)tab->numel[MLOC_BLOCK_COUNTER] * 8) == 0;
}

typedef struct {
    const char *skip, *extra, *bad_shape, *bad_dtype, *as_f16;
} variant;

/* Save the table's tensors from s, altered as v says; returns the open file. */
static mloc_st_file *save_variant(mloc_ctx *ctx, const mloc_table *tab, const mloc_store *s,
                                  const char *dir, variant v) {
    static int serial;
    static int64_t zeros[128];
    static uint16_t halves[128];
    char path[4200];
    snprintf(path, sizeof path, "%s/v%d.safetensors", dir, serial++);
    mloc_st_writer *w;
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    for (int i = 0; i < tab->n; i++) {
        const mloc_tensor *e = &tab->t[i];
        const void *data = mloc_store_ptr(s, tab, i);
        int counter = e->role == MLOC_ROLE_NUM_BATCHES;
        mloc_status st;
        if (v.skip && strcmp(e->name, v.skip) == 0) continue;
        if (v.bad_shape && strcmp(e->name, v.bad_shape) == 0)
            st = mloc_st_writer_add(w, e->name, MLOC_DTYPE_F32, 4, (int64_t[]){4, 2, 3, 3}, zeros);
        else if (v.bad_dtype && strcmp(e->name, v.bad_dtype) == 0)
            st = counter ? mloc_st_writer_add(w, e->name, MLOC_DTYPE_F32, 0, NULL, zeros)
                         : mloc_st_writer_add(w, e->name, MLOC_DTYPE_I64, e->ndim, e->shape, zeros);
        else if (v.as_f16 && strcmp(e->name, v.as_f16) == 0) {
            mloc_f32_to_f16(halves, data, e->numel);
            st = mloc_st_writer_add(w, e->name, MLOC_DTYPE_F16, e->ndim, e->shape, halves);
        } else if (counter)
            st = mloc_st_writer_add(w, e->name, MLOC_DTYPE_I64, 0, NULL, data);
        else
            st = mloc_st_writer_add(w, e->name, MLOC_DTYPE_F32, e->ndim, e->shape, data);
        assert_int_equal(st, MLOC_OK);
    }
    if (v.extra)
        assert_int_equal(mloc_st_writer_add(w, v.extra, MLOC_DTYPE_F32, 1, (int64_t[]){2}, zeros), MLOC_OK);
    assert_int_equal(mloc_st_writer_save(w, path), MLOC_OK);
    mloc_st_writer_free(w);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
    return f;
}

static void test_table_roundtrip(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("st_table");
    mloc_table tab;
    small_table(&tab);
    mloc_store a, b;
    assert_int_equal(mloc_store_alloc(ctx, &a, &tab), MLOC_OK);
    assert_int_equal(mloc_store_alloc(ctx, &b, &tab), MLOC_OK);
    fill_store(&tab, &a, 1.0f);

    char path[4200];
    snprintf(path, sizeof path, "%s/all.safetensors", dir);
    mloc_st_writer *w;
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    assert_int_equal(mloc_table_add_to_writer(w, &tab, &a, -1), MLOC_OK);
    assert_int_equal(mloc_st_writer_save(w, path), MLOC_OK);
    mloc_st_writer_free(w);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
    const mloc_st_tensor *t = mloc_st_find(f, "bn.num_batches_tracked");
    assert_true(t && t->dtype == MLOC_DTYPE_I64 && t->ndim == 0 && t->nbytes == 8);
    t = mloc_st_find(f, "bn.running_mean");
    assert_true(t && t->dtype == MLOC_DTYPE_F32 && t->ndim == 1 && t->shape[0] == 4);
    assert_int_equal(mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_STRICT), MLOC_OK);
    assert_true(store_equal(&tab, &a, &b));
    mloc_st_close(f);

    /* Encoder only: the head is not in the file. */
    snprintf(path, sizeof path, "%s/enc.safetensors", dir);
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    assert_int_equal(mloc_table_add_to_writer(w, &tab, &a, MLOC_GROUP_ENCODER), MLOC_OK);
    assert_int_equal(mloc_st_writer_save(w, path), MLOC_OK);
    mloc_st_writer_free(w);
    assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
    assert_int_equal(mloc_st_count(f), 4);
    assert_null(mloc_st_find(f, "head.weight"));
    fill_store(&tab, &b, 100.0f);
    expect_error(ctx, mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_STRICT), MLOC_ERR_DATA,
                 path, "missing tensor 'head.weight'", "F32 [2,4]", NULL);
    assert_int_equal(mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_ENCODER_ONLY), MLOC_OK);
    int h = mloc_table_find(&tab, "head.weight");
    assert_true(((float *)mloc_store_ptr(&b, &tab, h))[0] == 100.0f + 0.5f * (float)tab.t[h].offset);
    assert_memory_equal(b.param, a.param, (size_t)tab.t[h].offset * 4);
    assert_memory_equal(b.buffer, a.buffer, 16);
    assert_int_equal(b.counter[0], a.counter[0]);
    mloc_st_close(f);

    /* An F16 copy of a parameter loads, converted. */
    f = save_variant(ctx, &tab, &a, dir, (variant){.as_f16 = "conv.bias"});
    assert_int_equal(mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_STRICT), MLOC_OK);
    assert_true(store_equal(&tab, &a, &b)); /* small halves: exact */
    mloc_st_close(f);

    mloc_store_free(&a);
    mloc_store_free(&b);
    mloc_table_free(&tab);
    mloc_ctx_destroy(ctx);
}

static void test_table_load_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("st_table_err");
    mloc_table tab;
    small_table(&tab);
    mloc_store a, b, keep;
    assert_int_equal(mloc_store_alloc(ctx, &a, &tab), MLOC_OK);
    assert_int_equal(mloc_store_alloc(ctx, &b, &tab), MLOC_OK);
    assert_int_equal(mloc_store_alloc(ctx, &keep, &tab), MLOC_OK);
    fill_store(&tab, &a, 1.0f);
    fill_store(&tab, &b, 50.0f);
    fill_store(&tab, &keep, 50.0f);

    mloc_st_file *f = save_variant(ctx, &tab, &a, dir, (variant){.skip = "bn.running_mean"});
    expect_error(ctx, mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_STRICT), MLOC_ERR_DATA,
                 mloc_st_path(f), "missing tensor 'bn.running_mean'", "[4]", NULL);
    assert_true(store_equal(&tab, &b, &keep)); /* a failed load changes nothing */
    expect_error(ctx, mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_ENCODER_ONLY), MLOC_ERR_DATA,
                 "missing tensor 'bn.running_mean'", NULL);
    assert_int_equal(mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_ALLOW_MISSING), MLOC_OK);
    assert_memory_equal(b.param, a.param, (size_t)tab.numel[MLOC_BLOCK_PARAM] * 4);
    assert_memory_equal(b.buffer, keep.buffer, 16); /* kept its value */
    mloc_st_close(f);

    fill_store(&tab, &b, 50.0f);
    f = save_variant(ctx, &tab, &a, dir, (variant){.extra = "layer9.conv.weight"});
    expect_error(ctx, mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_STRICT), MLOC_ERR_DATA,
                 "unexpected tensor 'layer9.conv.weight'", "F32 [2]", NULL);
    assert_true(store_equal(&tab, &b, &keep));
    assert_int_equal(mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_ALLOW_UNEXPECTED), MLOC_OK);
    assert_true(store_equal(&tab, &a, &b));
    mloc_st_close(f);

    fill_store(&tab, &b, 50.0f);
    f = save_variant(ctx, &tab, &a, dir, (variant){.bad_shape = "conv.weight"});
    expect_error(ctx, mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_ALLOW_MISSING), MLOC_ERR_DATA,
                 "tensor 'conv.weight'", "expected [4,3,3,3], file has [4,2,3,3]", NULL);
    assert_true(store_equal(&tab, &b, &keep));
    mloc_st_close(f);

    f = save_variant(ctx, &tab, &a, dir, (variant){.bad_dtype = "bn.num_batches_tracked"});
    expect_error(ctx, mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_STRICT), MLOC_ERR_DATA,
                 "tensor 'bn.num_batches_tracked'", "wrong dtype F32, expected I64", NULL);
    mloc_st_close(f);
    f = save_variant(ctx, &tab, &a, dir, (variant){.bad_dtype = "conv.bias"});
    expect_error(ctx, mloc_table_load(ctx, &tab, &b, f, MLOC_LOAD_STRICT), MLOC_ERR_DATA,
                 "tensor 'conv.bias'", "wrong dtype I64, expected F32", NULL);
    assert_true(store_equal(&tab, &b, &keep));
    mloc_st_close(f);

    mloc_store_free(&a);
    mloc_store_free(&b);
    mloc_store_free(&keep);
    mloc_table_free(&tab);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_matches_st_py),
        cmocka_unit_test(test_conversions_match_numpy_and_torch),
        cmocka_unit_test(test_half_exhaustive),
        cmocka_unit_test(test_resnet9_state_dict),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_truncated_files),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_table_roundtrip),
        cmocka_unit_test(test_table_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
