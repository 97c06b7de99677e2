/* memloc data fetch: download the official dataset files with libcurl,
 * verify their checksums (in-tree MD5 / SHA-256, FORMATS.md section 1) and
 * unpack archives with libarchive.
 *
 * Nothing incomplete is left looking complete: a download goes to a hidden
 * "DIR/.<file>.part.<pid>" and is renamed into place only after its
 * checksum matched; an archive is unpacked into a hidden temporary
 * directory whose top-level entries are renamed into DIR at the end. On any
 * failure both are removed.
 *
 * Checksum provenance (FORMATS.md): a mismatch against an official or
 * torchvision checksum, or one given by the user, is ERR_DATA; a mismatch
 * against a third-party checksum only warns. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>

#include "data/internal.h"

#ifndef MLOC_VERSION
#define MLOC_VERSION "0"
#endif

enum { STRICT = 1, THIRD_PARTY = 0 };

typedef struct {
    const char *file;
    const char *url;
    const char *md5;
    int md5_strict;
    const char *sha256;
    int sha256_strict;
} fetch_file;

typedef struct {
    const char *name;
    int unpack;          /* archives: unpack with libarchive, then delete */
    const char *present; /* relative path that shows the data is already there */
    fetch_file files[4];
} fetch_set;

static const fetch_set sets[] = {
    {"cifar10", 1, "cifar-10-batches-bin/test_batch.bin",
     {{"cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
       "c32a1d4ab5d03f1284b67883e8d87530", STRICT,
       "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", THIRD_PARTY}}},
    {"cifar100", 1, "cifar-100-binary/test.bin",
     {{"cifar-100-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
       "03b5dce01913d631647c71ecec9e9cb8", THIRD_PARTY, NULL, 0}}},
    {"stl10", 1, "stl10_binary/test_X.bin",
     {{"stl10_binary.tar.gz", "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
       "91f7769df0f17e558f3565bffb0c7dfb", STRICT, NULL, 0}}},
    {"svhn", 0, NULL,
     {{"train_32x32.mat", "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
       "e26dedcc434d2e4c54c9b2d4a06d8373", STRICT,
       "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8", THIRD_PARTY},
      {"test_32x32.mat", "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
       "eb5a983be6a315427106f1b164d9cef3", STRICT, NULL, 0}}},
    {"mnist", 0, NULL,
     {{"train-images-idx3-ubyte.gz",
       "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
       "f68b3c2dcbeaaa9fbdd348bbdeb94873", STRICT, NULL, 0},
      {"train-labels-idx1-ubyte.gz",
       "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
       "d53e105ee54ea40749a09fcbcd1e9432", STRICT, NULL, 0},
      {"t10k-images-idx3-ubyte.gz",
       "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
       "9fb629c4189551a2d022fa330f9573f3", STRICT, NULL, 0},
      {"t10k-labels-idx1-ubyte.gz",
       "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
       "ec29112dd5afa0611ce80d1b7f02629c", STRICT, NULL, 0}}},
    {"fmnist", 0, NULL,
     {{"train-images-idx3-ubyte.gz",
       "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
       "8d4fb7e6c68d591d4c3dfef9ec88bf0d", STRICT, NULL, 0},
      {"train-labels-idx1-ubyte.gz",
       "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz",
       "25c81989df183df01b3e8a0aad5dffbe", STRICT, NULL, 0},
      {"t10k-images-idx3-ubyte.gz",
       "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz",
       "bef4ecab320f06d8554ea6380940ec79", STRICT, NULL, 0},
      {"t10k-labels-idx1-ubyte.gz",
       "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz",
       "bb300cfdad3c16e7a12a480ee83cd310", STRICT, NULL, 0}}},
};

static int count_files(const fetch_set *s) {
    int n = 0;
    while (n < 4 && s->files[n].file) n++;
    return n;
}

/* ---- removal ---------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* mkdir -p */
static mloc_status mkdirs(mloc_ctx *ctx, const char *dir) {
    char *p = strdup(dir);
    if (!p) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    mloc_status st = MLOC_OK;
    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c != '/' && c != 0) continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot create directory: %s", p,
                            strerror(errno));
            break;
        }
        *s = c;
        if (!c) break;
    }
    free(p);
    if (st == MLOC_OK && !data_dir_exists(dir))
        st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: not a directory", dir);
    return st;
}

/* ---- download ---------------------------------------------------------------- */

typedef struct {
    mloc_ctx *ctx;
    FILE *out;
    data_md5 md5;
    data_sha256 sha;
    const char *file;
    int write_failed;
    curl_off_t reported;
} download;

static size_t on_data(char *p, size_t size, size_t n, void *user) {
    download *dl = user;
    size_t bytes = size * n;
    if (fwrite(p, 1, bytes, dl->out) != bytes) {
        dl->write_failed = 1;
        return 0;
    }
    data_md5_update(&dl->md5, p, bytes);
    data_sha256_update(&dl->sha, p, bytes);
    return bytes;
}

static int on_progress(void *user, curl_off_t total, curl_off_t now, curl_off_t ut, curl_off_t un) {
    (void)ut;
    (void)un;
    download *dl = user;
    if (mloc_ctx_interrupted(dl->ctx)) return 1;
    if (now > 0 && now != dl->reported) {
        dl->reported = now;
        mloc_progress(dl->ctx, "fetch", (int64_t)now, (int64_t)total, dl->file);
    }
    return 0;
}

static mloc_status get_url(mloc_ctx *ctx, const char *url, const char *part, const char *file,
                           char md5[33], char sha[65]) {
    download dl;
    memset(&dl, 0, sizeof dl);
    dl.ctx = ctx;
    dl.file = file;
    data_md5_init(&dl.md5);
    data_sha256_init(&dl.sha);
    dl.out = fopen(part, "wb");
    if (!dl.out)
        return mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot create: %s", part, strerror(errno));
    CURL *c = curl_easy_init();
    if (!c) {
        fclose(dl.out);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "cannot initialise libcurl");
    }
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "memloc/" MLOC_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &dl);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &dl);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    CURLcode rc = curl_easy_perform(c);
    long http = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(c);
    int close_failed = fclose(dl.out) != 0;
    mloc_status st = MLOC_OK;
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "%s: download interrupted", url);
    else if (dl.write_failed || close_failed)
        st = mloc_error(ctx, MLOC_ERR_IO, "%s: write failed: %s", part, strerror(errno));
    else if (rc == CURLE_HTTP_RETURNED_ERROR)
        st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: HTTP %ld (check the URL or the mirror)", url, http);
    else if (rc == CURLE_WRITE_ERROR)
        st = mloc_error(ctx, MLOC_ERR_IO, "%s: write failed: %s", part, strerror(errno));
    else if (rc != CURLE_OK)
        st = mloc_error(ctx, MLOC_ERR_NOINPUT,
                        "%s: %s (check the network, or use a mirror with --url or MLOC_FETCH_BASE_URL)",
                        url, cerr[0] ? cerr : curl_easy_strerror(rc));
    if (st != MLOC_OK) {
        unlink(part);
        return st;
    }
    uint8_t h[32];
    data_md5_final(&dl.md5, h);
    data_hex(h, 16, md5);
    data_sha256_final(&dl.sha, h);
    data_hex(h, 32, sha);
    return MLOC_OK;
}

/* ---- unpacking ---------------------------------------------------------------- */

static mloc_status unpack(mloc_ctx *ctx, const char *archive_path, const char *label,
                          const char *dest) {
    struct archive *a = archive_read_new();
    struct archive *w = archive_write_disk_new();
    if (!a || !w) {
        archive_read_free(a);
        archive_write_free(w);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    }
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    /* Members are placed below dest by prefixing their names (an absolute
     * name stays inside dest); ".." and writing through symlinks are refused. */
    archive_write_disk_set_options(w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    mloc_status st = MLOC_OK;
    if (archive_read_open_filename(a, archive_path, 1 << 20) != ARCHIVE_OK) {
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: cannot open the archive: %s", label,
                        archive_error_string(a));
        goto done;
    }
    struct archive_entry *e;
    char name[1024];
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char *raw = archive_entry_pathname(e);
        snprintf(name, sizeof name, "%s", raw ? raw : "?");
        char *full = data_strdupf("%s/%s", dest, name);
        if (!full) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            goto done;
        }
        archive_entry_set_pathname(e, full);
        free(full);
        const char *hl = archive_entry_hardlink(e);
        if (hl) {
            char *target = data_strdupf("%s/%s", dest, hl);
            if (!target) {
                st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
                goto done;
            }
            archive_entry_set_hardlink(e, target);
            free(target);
        }
        if (archive_write_header(w, e) < ARCHIVE_WARN) {
            st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: member %s: %s", label, name,
                            archive_error_string(w));
            goto done;
        }
        const void *buf;
        size_t size;
        la_int64_t off;
        while ((r = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK) {
            if (archive_write_data_block(w, buf, size, off) < ARCHIVE_WARN) {
                st = mloc_error(ctx, MLOC_ERR_IO, "%s: member %s: %s", label, name,
                                archive_error_string(w));
                goto done;
            }
        }
        if (r != ARCHIVE_EOF) {
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s: member %s: %s", label, name,
                            archive_error_string(a));
            goto done;
        }
        if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
            st = mloc_error(ctx, MLOC_ERR_IO, "%s: %s", label, archive_error_string(w));
            goto done;
        }
        if (mloc_ctx_interrupted(ctx)) {
            st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "%s: unpacking interrupted", label);
            goto done;
        }
    }
    if (r != ARCHIVE_EOF)
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: %s (a corrupt or truncated archive?)", label,
                        archive_error_string(a));
done:
    archive_read_free(a);
    archive_write_free(w);
    return st;
}

/* Move every top-level entry of tmp into dir (replacing existing ones). */
static mloc_status move_into(mloc_ctx *ctx, const char *tmp, const char *dir) {
    struct dirent **names = NULL;
    int n = scandir(tmp, &names, NULL, alphasort);
    if (n < 0) return mloc_error(ctx, MLOC_ERR_IO, "%s: cannot list: %s", tmp, strerror(errno));
    mloc_status st = MLOC_OK;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (st != MLOC_OK || strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0) continue;
        char *from = data_strdupf("%s/%s", tmp, nm), *to = data_strdupf("%s/%s", dir, nm);
        char *old = data_strdupf("%s/.%s.old.%d", dir, nm, (int)getpid());
        if (!from || !to || !old) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        } else {
            struct stat sb;
            int existed = lstat(to, &sb) == 0;
            if (existed && rename(to, old) != 0)
                st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot replace: %s", to, strerror(errno));
            else if (rename(from, to) != 0)
                st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot move into place: %s", to,
                                strerror(errno));
            if (existed) rm_tree(old);
        }
        free(from);
        free(to);
        free(old);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

/* ---- the command ---------------------------------------------------------------- */

static char *url_for(const fetch_file *f, const mloc_fetch_options *opt, int single) {
    const char *base = getenv("MLOC_FETCH_BASE_URL");
    if (opt && opt->url) {
        size_t n = strlen(opt->url);
        if (n && opt->url[n - 1] == '/') return data_strdupf("%s%s", opt->url, f->file);
        if (single) return strdup(opt->url);
        return NULL;
    }
    if (base && *base) {
        size_t n = strlen(base);
        return data_strdupf("%s%s%s", base, base[n - 1] == '/' ? "" : "/", f->file);
    }
    return strdup(f->url);
}

static mloc_status verify(mloc_ctx *ctx, const char *what, const char *label, const char *got,
                          const char *want, int strict, const char *url) {
    if (!want || strcasecmp(got, want) == 0) return MLOC_OK;
    if (strict)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: %s %s, expected %s (a corrupt download, or %s serves a different "
                          "file)",
                          label, what, got, want, url);
    mloc_log(ctx, MLOC_LOG_WARN, "%s: %s %s differs from the third-party checksum %s (not verified "
             "by the dataset authors; continuing)", label, what, got, want);
    return MLOC_OK;
}

static mloc_status fetch_one(mloc_ctx *ctx, const fetch_set *set, const fetch_file *f,
                             const char *dir, const mloc_fetch_options *opt, int single) {
    mloc_status st = MLOC_OK;
    char *url = url_for(f, opt, single);
    char *part = data_strdupf("%s/.%s.part.%d", dir, f->file, (int)getpid());
    char *final = data_strdupf("%s/%s", dir, f->file);
    char *tmp = data_strdupf("%s/.memloc-unpack.%s.%d", dir, set->name, (int)getpid());
    char md5[33], sha[65];
    if (!url && opt && opt->url) {
        st = mloc_error(ctx, MLOC_ERR_USAGE,
                        "--url %s: %s has several files, so the URL must be a base ending in '/'",
                        opt->url, set->name);
        goto done;
    }
    if (!url || !part || !final || !tmp) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!set->unpack && data_file_exists(final) && !(opt && opt->force)) {
        mloc_log(ctx, MLOC_LOG_INFO, "%s: already present (use --force to fetch it again)", final);
        goto done;
    }
    mloc_log(ctx, MLOC_LOG_INFO, "fetching %s", url);
    st = get_url(ctx, url, part, f->file, md5, sha);
    if (st != MLOC_OK) goto done;
    const char *want_md5 = opt && opt->md5 && single ? opt->md5 : f->md5;
    int md5_strict = opt && opt->md5 && single ? 1 : f->md5_strict;
    const char *want_sha = opt && opt->sha256 && single ? opt->sha256 : f->sha256;
    int sha_strict = opt && opt->sha256 && single ? 1 : f->sha256_strict;
    st = verify(ctx, "MD5", f->file, md5, want_md5, md5_strict, url);
    if (st == MLOC_OK) st = verify(ctx, "SHA-256", f->file, sha, want_sha, sha_strict, url);
    if (st != MLOC_OK) goto done;
    if (!set->unpack) {
        if (rename(part, final) != 0)
            st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot move into place: %s", final,
                            strerror(errno));
        goto done;
    }
    rm_tree(tmp);
    if (mkdir(tmp, 0755) != 0) {
        st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    st = unpack(ctx, part, f->file, tmp);
    if (st != MLOC_OK) goto done;
    char *probe = data_strdupf("%s/%s", tmp, set->present);
    int ok = probe && data_file_exists(probe);
    free(probe);
    if (!ok) {
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: the archive has no %s (not the %s archive?)", f->file,
                        set->present, set->name);
        goto done;
    }
    st = move_into(ctx, tmp, dir);
done:
    if (part) unlink(part);
    if (tmp) rm_tree(tmp);
    free(url);
    free(part);
    free(final);
    free(tmp);
    return st;
}

mloc_status mloc_data_fetch(mloc_ctx *ctx, const char *name, const char *dir,
                            const mloc_fetch_options *opt) {
    const fetch_set *set = NULL;
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (strcmp(sets[i].name, name) == 0) set = &sets[i];
    if (!set)
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "unknown dataset '%s', expected cifar10, cifar100, stl10, svhn, fmnist or "
                          "mnist",
                          name);
    int nfiles = count_files(set), single = nfiles == 1;
    if (opt && (opt->md5 || opt->sha256) && !single)
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "--md5/--sha256: %s has %d files; checksum overrides need a one-file "
                          "dataset",
                          name, nfiles);
    MLOC_TRY(mkdirs(ctx, dir));
    if (set->unpack && !(opt && opt->force)) {
        char *probe = data_strdupf("%s/%s", dir, set->present);
        int present = probe && data_file_exists(probe);
        free(probe);
        if (present) {
            mloc_log(ctx, MLOC_LOG_INFO, "%s/%s: already present (use --force to fetch it again)", dir,
                     set->present);
            return MLOC_OK;
        }
    }
    /* reference-counted and thread-safe since libcurl 7.84 */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return mloc_error(ctx, MLOC_ERR_INTERNAL, "cannot initialise libcurl");
    mloc_status st = MLOC_OK;
    for (int i = 0; i < nfiles && st == MLOC_OK; i++)
        st = fetch_one(ctx, set, &set->files[i], dir, opt, single);
    curl_global_cleanup();
    return st;
}
