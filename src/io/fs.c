/* Whole-file reads, atomic replacement and mkdir -p.
 *
 * An atomic write goes to "<path>.tmp.<pid>", is flushed and fsync'ed, then
 * renamed over <path> (rename is atomic within a file system), and the
 * directory is fsync'ed so the rename itself survives a crash. A reader
 * therefore sees either the old file or the complete new one. */
#include "memloc/io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

mloc_status mloc_atomic_open(mloc_ctx *ctx, mloc_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path)
        return mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: path too long", path);
    strcpy(af->path, path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp, "wb");
    if (!af->fp)
        return mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot create: %s", af->tmp,
                          strerror(errno));
    return MLOC_OK;
}

/* fsync the directory holding path, so a completed rename is durable. */
static void sync_parent(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    fsync(fd); /* best effort: some file systems refuse fsync on directories */
    close(fd);
}

mloc_status mloc_atomic_commit(mloc_ctx *ctx, mloc_atomic_file *af) {
    const char *what = NULL;
    int err = 0;
    if (fflush(af->fp) != 0 || ferror(af->fp)) {
        what = "write";
        err = errno;
    } else if (fsync(fileno(af->fp)) != 0) {
        what = "fsync";
        err = errno;
    }
    if (fclose(af->fp) != 0 && !what) {
        what = "close";
        err = errno;
    }
    af->fp = NULL;
    if (!what && rename(af->tmp, af->path) != 0) {
        what = "rename";
        err = errno;
    }
    if (what) {
        unlink(af->tmp);
        return mloc_error(ctx, MLOC_ERR_IO, "%s: %s failed: %s", af->path, what,
                          err ? strerror(err) : "stream error");
    }
    sync_parent(af->path);
    return MLOC_OK;
}

void mloc_atomic_abort(mloc_atomic_file *af) {
    if (af->fp) fclose(af->fp);
    af->fp = NULL;
    if (af->tmp[0]) unlink(af->tmp);
}

mloc_status mloc_write_file_atomic(mloc_ctx *ctx, const char *path, const void *data,
                                   size_t size) {
    mloc_atomic_file af;
    MLOC_TRY(mloc_atomic_open(ctx, &af, path));
    if (size && fwrite(data, 1, size, af.fp) != size) {
        int err = errno;
        mloc_atomic_abort(&af);
        return mloc_error(ctx, MLOC_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    return mloc_atomic_commit(ctx, &af);
}

mloc_status mloc_read_file(mloc_ctx *ctx, const char *path, void **data, size_t *size) {
    *data = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: cannot open: %s", path, strerror(errno));
    mloc_status st = MLOC_OK;
    char *buf = NULL;
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: not a regular file", path);
        goto done;
    }
    size_t n = (size_t)sb.st_size;
    buf = malloc(n + 1);
    if (!buf) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
        goto done;
    }
    if (fread(buf, 1, n, fp) != n) {
        st = mloc_error(ctx, MLOC_ERR_IO, "%s: short read (expected %zu bytes)", path, n);
        free(buf);
        buf = NULL;
        goto done;
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
done:
    fclose(fp);
    return st;
}

mloc_status mloc_mkdirs(mloc_ctx *ctx, const char *path) {
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return mloc_error(ctx, MLOC_ERR_CANTCREAT, "'%s': invalid directory path", path);
    memcpy(buf, path, len + 1);
    /* Create each prefix ending before a '/', then the whole path. */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char keep = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot create directory: %s", buf,
                              strerror(errno));
        buf[i] = keep;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: exists and is not a directory", path);
    return MLOC_OK;
}
