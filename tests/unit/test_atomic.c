/* Atomic files, whole-file reads, mkdir -p and JSON results (src/io/fs.c,
 * src/io/json.c). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "memloc/io.h"
#include "test_util.h"

/* Entries of dir other than . and ..; fails on any "*.tmp.*" left behind. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (strstr(e->d_name, ".tmp.")) fail_msg("temporary file %s/%s left behind", dir, e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static void assert_file(const char *path, const char *want) {
    void *buf;
    size_t n;
    assert_int_equal(mloc_read_file(NULL, path, &buf, &n), MLOC_OK);
    assert_int_equal(n, strlen(want));
    assert_string_equal(buf, want); /* NUL-terminated */
    free(buf);
}

static void test_write_and_replace(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("atomic_write");
    char path[4200];
    snprintf(path, sizeof path, "%s/f.txt", dir);
    assert_int_equal(mloc_write_file_atomic(ctx, path, "first", 5), MLOC_OK);
    assert_file(path, "first");
    assert_int_equal(mloc_write_file_atomic(ctx, path, "second version", 14), MLOC_OK);
    assert_file(path, "second version");
    assert_int_equal(mloc_write_file_atomic(ctx, path, "", 0), MLOC_OK);
    assert_file(path, "");
    assert_int_equal(count_entries(dir), 1);

    /* Open/commit by hand: the target is untouched until commit. */
    mloc_atomic_file af;
    assert_int_equal(mloc_atomic_open(ctx, &af, path), MLOC_OK);
    assert_non_null(strstr(af.tmp, ".tmp."));
    fputs("third", af.fp);
    fflush(af.fp);
    assert_file(path, "");
    assert_int_equal(mloc_atomic_commit(ctx, &af), MLOC_OK);
    assert_file(path, "third");
    assert_int_equal(count_entries(dir), 1);
    mloc_ctx_destroy(ctx);
}

static void test_abort_keeps_old_file(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("atomic_abort");
    char path[4200], fresh[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(mloc_write_file_atomic(ctx, path, "old weights", 11), MLOC_OK);
    mloc_atomic_file af;
    assert_int_equal(mloc_atomic_open(ctx, &af, path), MLOC_OK);
    fputs("half of the new weig", af.fp);
    fflush(af.fp);
    struct stat sb;
    assert_int_equal(stat(af.tmp, &sb), 0); /* the partial file exists ... */
    mloc_atomic_abort(&af);
    assert_int_not_equal(stat(af.tmp, &sb), 0); /* ... and is gone */
    assert_file(path, "old weights");
    assert_int_equal(count_entries(dir), 1);

    /* An aborted first write leaves nothing at all. */
    snprintf(fresh, sizeof fresh, "%s/new.json", dir);
    assert_int_equal(mloc_atomic_open(ctx, &af, fresh), MLOC_OK);
    mloc_atomic_abort(&af);
    assert_int_not_equal(stat(fresh, &sb), 0);
    assert_int_equal(count_entries(dir), 1);
    mloc_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("atomic_err");
    char path[4200];
    assert_int_equal(mloc_write_file_atomic(ctx, "/nonexistent/dir/f", "x", 1), MLOC_ERR_CANTCREAT);
    assert_non_null(strstr(mloc_ctx_error(ctx), "/nonexistent/dir/f"));
    void *buf = (void *)1;
    size_t n;
    assert_int_equal(mloc_read_file(ctx, "/nonexistent/f", &buf, &n), MLOC_ERR_NOINPUT);
    assert_null(buf);
    assert_non_null(strstr(mloc_ctx_error(ctx), "/nonexistent/f: cannot open"));
    assert_int_equal(mloc_read_file(ctx, dir, &buf, &n), MLOC_ERR_NOINPUT);
    assert_non_null(strstr(mloc_ctx_error(ctx), "not a regular file"));

    /* A directory where the file should be: rename fails, temp removed. */
    snprintf(path, sizeof path, "%s/sub", dir);
    assert_int_equal(mloc_mkdirs(ctx, path), MLOC_OK);
    snprintf(path, sizeof path, "%s/sub/inner", dir);
    assert_int_equal(mloc_mkdirs(ctx, path), MLOC_OK);
    snprintf(path, sizeof path, "%s/sub", dir);
    assert_int_equal(mloc_write_file_atomic(ctx, path, "x", 1), MLOC_ERR_IO);
    assert_non_null(strstr(mloc_ctx_error(ctx), "rename failed"));
    assert_int_equal(count_entries(dir), 1);
    mloc_ctx_destroy(ctx);
}

static void test_mkdirs(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("mkdirs");
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/a/b//c/", dir);
    assert_int_equal(mloc_mkdirs(ctx, path), MLOC_OK);
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(mloc_mkdirs(ctx, path), MLOC_OK); /* exists: fine */
    snprintf(path, sizeof path, "%s/file", dir);
    assert_int_equal(mloc_write_file_atomic(ctx, path, "x", 1), MLOC_OK);
    assert_int_equal(mloc_mkdirs(ctx, path), MLOC_ERR_CANTCREAT);
    assert_non_null(strstr(mloc_ctx_error(ctx), "not a directory"));
    snprintf(path, sizeof path, "%s/file/below", dir);
    assert_int_equal(mloc_mkdirs(ctx, path), MLOC_ERR_CANTCREAT);
    assert_non_null(strstr(mloc_ctx_error(ctx), "cannot create directory"));
    assert_int_equal(mloc_mkdirs(ctx, ""), MLOC_ERR_CANTCREAT);
    mloc_ctx_destroy(ctx);
}

static void test_json_save_load(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("json");
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_t *doc = json_pack("{s:s, s:I, s:f, s:[i,i], s:{s:b}}", "schema", "memloc.test.v1",
                            "seed", (json_int_t)1234567890123LL, "loss", 0.1, "taps", 1, 2,
                            "flags", "ok", 1);
    assert_non_null(doc);
    assert_int_equal(mloc_json_save(ctx, path, doc), MLOC_OK);
    /* Insertion order, indent 2, doubles round-trip, final newline. */
    assert_file(path, "{\n"
                      "  \"schema\": \"memloc.test.v1\",\n"
                      "  \"seed\": 1234567890123,\n"
                      "  \"loss\": 0.10000000000000001,\n"
                      "  \"taps\": [\n"
                      "    1,\n"
                      "    2\n"
                      "  ],\n"
                      "  \"flags\": {\n"
                      "    \"ok\": true\n"
                      "  }\n"
                      "}\n");
    json_t *back;
    assert_int_equal(mloc_json_load(ctx, path, &back), MLOC_OK);
    assert_true(json_equal(doc, back));
    json_decref(back);
    json_decref(doc);
    assert_int_equal(count_entries(dir), 1);

    const char *dup = "{\"a\": 1,\n \"a\": 2}";
    assert_int_equal(mloc_write_file_atomic(ctx, path, dup, strlen(dup)), MLOC_OK);
    assert_int_equal(mloc_json_load(ctx, path, &back), MLOC_ERR_DATA);
    assert_null(back);
    assert_non_null(strstr(mloc_ctx_error(ctx), "line 2"));
    assert_non_null(strstr(mloc_ctx_error(ctx), "duplicate object key"));
    doc = json_object();
    assert_int_equal(mloc_json_save(ctx, "/nonexistent/x.json", doc), MLOC_ERR_CANTCREAT);
    json_decref(doc);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_and_replace),
        cmocka_unit_test(test_abort_keeps_old_file),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_mkdirs),
        cmocka_unit_test(test_json_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
