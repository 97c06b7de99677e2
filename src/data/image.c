/* Image decoding as torchvision's default loader does it: PIL's
 * Image.open(...).convert("RGB") (FORMATS.md 1.5), and PIL's bilinear resize.
 *
 * The format is found from the content, as PIL does, not the extension:
 *   JPEG (FF D8 FF)  libjpeg-turbo with PIL's settings (islow DCT, fancy
 *                    upsampling); gray is replicated; CMYK / YCCK go through
 *                    PIL's cmyk2rgb, inverted first when an Adobe marker is
 *                    present (PIL's "CMYK;I" raw mode). A JPEG that ends
 *                    early is an error, as PIL's "image file is truncated".
 *   PNG              libpng: palette expanded, alpha dropped (no
 *                    compositing), gray replicated, 1/2/4-bit gray scaled to
 *                    0..255, 16-bit samples keep their high byte, except
 *                    16-bit gray: PIL opens it as mode I and convert("RGB")
 *                    clips the value to 0..255. No gamma, no EXIF rotation.
 *   PNM              binary P5 / P6 with maxval 255.
 * Anything else (BMP, TIFF, WebP, ...) is an error naming the file. */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "data/internal.h"

/* ---- JPEG ------------------------------------------------------------------ */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    /* level -1 is a warning; the one PIL turns into an error is running out of data */
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

/* PIL's MULDIV255 and cmyk2rgb (libImaging/Convert.c). */
static uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static uint8_t clip8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

static mloc_status decode_jpeg(mloc_ctx *ctx, const uint8_t *bytes, size_t size, const char *name,
                               int64_t max_pixels, uint8_t **out, int *oh, int *ow) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile row = NULL;
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_on_error;
    err.pub.emit_message = jpeg_on_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: corrupt JPEG: %s", name, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    int w = (int)cinfo.image_width, h = (int)cinfo.image_height;
    if ((int64_t)w * h > max_pixels) {
        jpeg_destroy_decompress(&cinfo);
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: JPEG of %dx%d pixels, more than the limit of %lld",
                          name, w, h, (long long)max_pixels);
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    int gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
    int invert = cmyk && cinfo.saw_Adobe_marker;
    cinfo.out_color_space = cmyk ? JCS_CMYK : gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int nc = cinfo.output_components;
    if ((int)cinfo.output_width != w || (int)cinfo.output_height != h ||
        nc != (cmyk ? 4 : gray ? 1 : 3)) {
        snprintf(err.msg, sizeof err.msg, "unexpected output %ux%u with %d components",
                 cinfo.output_width, cinfo.output_height, nc);
        longjmp(err.jump, 1);
    }
    rgb = malloc((size_t)w * h * 3 + 1);
    row = malloc((size_t)w * nc + 1);
    if (!rgb || !row) {
        snprintf(err.msg, sizeof err.msg, "out of memory for %dx%d pixels", w, h);
        longjmp(err.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        JSAMPROW rp = row;
        jpeg_read_scanlines(&cinfo, &rp, 1);
        uint8_t *o = rgb + (size_t)y * w * 3;
        if (nc == 3) {
            memcpy(o, row, (size_t)w * 3);
        } else if (nc == 1) {
            for (int x = 0; x < w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = row[x];
        } else {
            for (int x = 0; x < w; x++) {
                const uint8_t *p = row + 4 * x;
                int c = p[0], m = p[1], yy = p[2], k = p[3];
                if (invert) c = 255 - c, m = 255 - m, yy = 255 - yy, k = 255 - k;
                int nk = 255 - k;
                o[3 * x] = clip8(nk - muldiv255(c, nk));
                o[3 * x + 1] = clip8(nk - muldiv255(m, nk));
                o[3 * x + 2] = clip8(nk - muldiv255(yy, nk));
            }
        }
        if (err.truncated) break;
    }
    if (err.truncated) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: truncated JPEG (data ends before the image is complete)", name);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    *out = rgb;
    *oh = h;
    *ow = w;
    return MLOC_OK;
}

/* ---- PNG ------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    char msg[256];
} png_mem;

static void png_read_mem(png_structp png, png_bytep dst, png_size_t n) {
    png_mem *m = png_get_io_ptr(png);
    if (n > m->size - m->pos) png_error(png, "truncated PNG (data ends early)");
    memcpy(dst, m->p + m->pos, n);
    m->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_mem *m = png_get_error_ptr(png);
    snprintf(m->msg, sizeof m->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static mloc_status decode_png(mloc_ctx *ctx, const uint8_t *bytes, size_t size, const char *name,
                              int64_t max_pixels, uint8_t **out, int *oh, int *ow) {
    png_mem m = {bytes, size, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &m, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory for libpng", name);
    }
    uint8_t *volatile buf = NULL;
    uint8_t **volatile rows = NULL;
    uint8_t *volatile rgb = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(buf);
        free(rows);
        free(rgb);
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: corrupt PNG: %s", name, m.msg);
    }
    png_set_read_fn(png, &m, png_read_mem);
    png_set_user_limits(png, 1u << 24, 1u << 24);
    png_read_info(png, info);
    png_uint_32 w32, h32;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w32, &h32, &depth, &color, &interlace, NULL, NULL);
    int w = (int)w32, h = (int)h32;
    if ((int64_t)w * h > max_pixels) {
        snprintf(m.msg, sizeof m.msg, "%dx%d pixels, more than the limit of %lld", w, h,
                 (long long)max_pixels);
        png_longjmp(png, 1);
    }
    int gray16 = color == PNG_COLOR_TYPE_GRAY && depth == 16;
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && !gray16) png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int nc = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (nc < 1 || nc > 4 || rowbytes < (size_t)w * nc * (gray16 ? 2 : 1)) {
        snprintf(m.msg, sizeof m.msg, "unexpected layout: %d channels, %zu bytes per row", nc,
                 rowbytes);
        png_longjmp(png, 1);
    }
    buf = malloc(rowbytes * (size_t)h + 1);
    rows = malloc(sizeof *rows * ((size_t)h + 1));
    rgb = malloc((size_t)w * h * 3 + 1);
    if (!buf || !rows || !rgb) {
        snprintf(m.msg, sizeof m.msg, "out of memory for %dx%d pixels", w, h);
        png_longjmp(png, 1);
    }
    for (int y = 0; y < h; y++) rows[y] = buf + (size_t)y * rowbytes;
    png_read_image(png, rows);
    for (int y = 0; y < h; y++) {
        const uint8_t *r = rows[y];
        uint8_t *o = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++, o += 3) {
            if (gray16) {
                int v = r[2 * x] << 8 | r[2 * x + 1]; /* big-endian; PIL clips I to 0..255 */
                o[0] = o[1] = o[2] = (uint8_t)(v > 255 ? 255 : v);
            } else if (nc >= 3) {
                o[0] = r[nc * x];
                o[1] = r[nc * x + 1];
                o[2] = r[nc * x + 2];
            } else {
                o[0] = o[1] = o[2] = r[nc * x];
            }
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(buf);
    free(rows);
    *out = rgb;
    *oh = h;
    *ow = w;
    return MLOC_OK;
}

/* ---- PNM (binary P5 / P6, maxval 255) --------------------------------------- */

static int pnm_int(const uint8_t *p, size_t size, size_t *pos, long *out) {
    while (*pos < size) {
        if (p[*pos] == '#') {
            while (*pos < size && p[*pos] != '\n') (*pos)++;
        } else if (p[*pos] == ' ' || p[*pos] == '\t' || p[*pos] == '\n' || p[*pos] == '\r') {
            (*pos)++;
        } else {
            break;
        }
    }
    long v = 0;
    int digits = 0;
    while (*pos < size && p[*pos] >= '0' && p[*pos] <= '9' && digits < 9) {
        v = v * 10 + (p[*pos] - '0');
        (*pos)++;
        digits++;
    }
    *out = v;
    return digits > 0;
}

static mloc_status decode_pnm(mloc_ctx *ctx, const uint8_t *p, size_t size, const char *name,
                              int64_t max_pixels, uint8_t **out, int *oh, int *ow) {
    int nc = p[1] == '6' ? 3 : 1;
    size_t pos = 2;
    long w, h, maxval;
    if (!pnm_int(p, size, &pos, &w) || !pnm_int(p, size, &pos, &h) ||
        !pnm_int(p, size, &pos, &maxval) || pos >= size || w < 1 || h < 1)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: corrupt PNM header", name);
    if (maxval != 255)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: PNM maxval %ld, expected 255", name, maxval);
    if ((int64_t)w * h > max_pixels)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: PNM of %ldx%ld pixels, more than the limit of %lld",
                          name, w, h, (long long)max_pixels);
    pos++; /* the single whitespace after maxval */
    size_t need = (size_t)w * h * nc;
    if (size - pos < need)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: truncated PNM: %zu bytes of pixels, expected %zu",
                          name, size - pos, need);
    uint8_t *rgb = malloc((size_t)w * h * 3 + 1);
    if (!rgb) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < (size_t)w * h; i++)
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = p[pos + i * nc + (nc == 3 ? c : 0)];
    *out = rgb;
    *oh = (int)h;
    *ow = (int)w;
    return MLOC_OK;
}

mloc_status data_decode_image(mloc_ctx *ctx, const uint8_t *bytes, size_t size, const char *name,
                              int64_t max_pixels, uint8_t **rgb, int *h, int *w) {
    *rgb = NULL;
    *h = *w = 0;
    if (max_pixels <= 0) max_pixels = (int64_t)1 << 26;
    if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return decode_jpeg(ctx, bytes, size, name, max_pixels, rgb, h, w);
    if (size >= 8 && memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0)
        return decode_png(ctx, bytes, size, name, max_pixels, rgb, h, w);
    if (size >= 3 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6'))
        return decode_pnm(ctx, bytes, size, name, max_pixels, rgb, h, w);
    const char *what = size >= 2 && bytes[0] == 'B' && bytes[1] == 'M' ? "a BMP image"
                       : size >= 4 && (memcmp(bytes, "II*", 4) == 0 || memcmp(bytes, "MM\0*", 4) == 0)
                           ? "a TIFF image"
                       : size >= 12 && memcmp(bytes + 8, "WEBP", 4) == 0 ? "a WebP image"
                       : size == 0 ? "an empty file"
                                   : "not an image";
    return mloc_error(ctx, MLOC_ERR_DATA,
                      "%s: %s (starts with %02x %02x %02x %02x), expected JPEG, PNG or binary PNM",
                      name, what, size > 0 ? bytes[0] : 0, size > 1 ? bytes[1] : 0,
                      size > 2 ? bytes[2] : 0, size > 3 ? bytes[3] : 0);
}

/* ---- PIL bilinear resize (Resample.c) --------------------------------------- */

#define PRECISION_BITS (32 - 8 - 2)

static double triangle(double x) {
    if (x < 0) x = -x;
    return x < 1 ? 1 - x : 0;
}

/* Fixed-point weights for one axis: bounds[2*o] = first input, bounds[2*o+1]
 * = count, weights kk[o*ksize + i]. Returns ksize, or 0 on allocation failure. */
static int precompute(int in, int out, int **bounds_out, int **kk_out) {
    double scale = (double)in / out;
    double fs = scale > 1 ? scale : 1;
    double support = 1.0 * fs; /* bilinear: support 1 */
    int ksize = (int)ceil(support) * 2 + 1;
    int *bounds = malloc(sizeof *bounds * 2 * (size_t)out);
    int *kk = malloc(sizeof *kk * (size_t)out * ksize);
    double *w = malloc(sizeof *w * (size_t)ksize);
    if (!bounds || !kk || !w) {
        free(bounds);
        free(kk);
        free(w);
        return 0;
    }
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        double ww = 0;
        for (int x = 0; x < xmax; x++) {
            w[x] = triangle((x + xmin - center + 0.5) / fs);
            ww += w[x];
        }
        for (int x = 0; x < ksize; x++) {
            double k = x < xmax ? (ww != 0 ? w[x] / ww : w[x]) : 0;
            /* round half away from zero */
            kk[o * ksize + x] = k < 0 ? (int)(-0.5 + k * (1 << PRECISION_BITS))
                                      : (int)(0.5 + k * (1 << PRECISION_BITS));
        }
        bounds[2 * o] = xmin;
        bounds[2 * o + 1] = xmax;
    }
    free(w);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static uint8_t clip_fixed(int64_t v) {
    if (v >= ((int64_t)256 << PRECISION_BITS)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Resample one axis of an h x w x c image: along x (horizontal) or y. */
static int resample_axis(const uint8_t *src, int h, int w, int c, uint8_t *dst, int out,
                         int horizontal) {
    int *bounds, *kk;
    int ksize = precompute(horizontal ? w : h, out, &bounds, &kk);
    if (!ksize) return 0;
    int oh = horizontal ? h : out, ow = horizontal ? out : w;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int o = horizontal ? x : y;
            int lo = bounds[2 * o], n = bounds[2 * o + 1];
            const int *k = kk + (size_t)o * ksize;
            for (int ch = 0; ch < c; ch++) {
                int64_t acc = 1 << (PRECISION_BITS - 1);
                for (int i = 0; i < n; i++) {
                    int sy = horizontal ? y : lo + i, sx = horizontal ? lo + i : x;
                    acc += (int64_t)src[((size_t)sy * w + sx) * c + ch] * k[i];
                }
                dst[((size_t)y * ow + x) * c + ch] = clip_fixed(acc);
            }
        }
    free(bounds);
    free(kk);
    return 1;
}

int data_resize_bilinear(const uint8_t *src, int h, int w, int c, uint8_t *dst, int oh, int ow) {
    /* Horizontal pass first into a uint8 intermediate, then vertical; a pass
     * whose size is unchanged is skipped (PIL's ImagingResampleInner). */
    if (w == ow && h == oh) {
        memcpy(dst, src, (size_t)h * w * c);
        return 1;
    }
    if (w != ow && h != oh) {
        uint8_t *tmp = malloc((size_t)h * ow * c);
        int ok = tmp && resample_axis(src, h, w, c, tmp, ow, 1) &&
                 resample_axis(tmp, h, ow, c, dst, oh, 0);
        free(tmp);
        return ok;
    }
    return w != ow ? resample_axis(src, h, w, c, dst, ow, 1) : resample_axis(src, h, w, c, dst, oh, 0);
}
