/*
 * BITMAP images (see bitmap.h).
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#include "bitmap.h"

#include <string.h>

static unsigned
bitmap_bits(int fmt)
{
    switch (fmt) {
    case BMP_1BIT_LE: case BMP_1BIT_BE: return 1;
    case BMP_4BIT_LE: case BMP_4BIT_BE: return 4;
    case BMP_8BIT: case BMP_8BIT_A: return 8;
    case BMP_16BIT: case BMP_16BIT_565: return 16;
    case BMP_24BIT: return 24;
    case BMP_32BIT: case BMP_RGBA: return 32;
    default: return 0;
    }
}

/*
 * 16-bit rows are converted ROW_CHUNK pixels at a time into a local array that is
 * then copied out: a loop with a constant trip count whose stores cannot alias the source
 * is one gcc -O2 vectorizes (x555 of a 1024x768 image: 1.1 ms pixel by pixel, 0.25 ms so).
 * The words are in host order, so the copy is a memcpy on little-endian hosts only.
 */
#define ROW_CHUNK 16

static inline uint32_t
get_u16le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

/* x555 (bits 14-10 red, 9-5 green, 4-0 blue) as 0x00RRGGBB. */
static inline uint32_t
word_x555(uint32_t v)
{
    return (uint32_t)widen5(v) | ((uint32_t)widen5(v >> 5) << 8) |
           ((uint32_t)widen5(v >> 10) << 16);
}

/* 565 (bits 15-11 red, 10-5 green, 4-0 blue) as 0x00RRGGBB, top bits repeated. */
static inline uint32_t
word_565(uint32_t v)
{
    uint32_t r = (v >> 11) & 31u, g = (v >> 5) & 63u, b = v & 31u;
    return ((b << 3) | (b >> 2)) | (((g << 2) | (g >> 4)) << 8) | (((r << 3) | (r >> 2)) << 16);
}

static inline void
store_words(uint8_t *dst, const uint32_t *w, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, w, n * 4);
#else
    for (size_t i = 0; i < n; i++) {
        put_u32le(dst + 4 * i, w[i]);
    }
#endif
}

/* One row of 16-bit pixels (565 when rgb565, else x555) as B, G, R, 0. */
static void
row_16bit(const uint8_t *src, uint8_t *dst, size_t width, int rgb565)
{
    uint32_t w[ROW_CHUNK];
    size_t x = 0, k;
    for (; x + ROW_CHUNK <= width; x += ROW_CHUNK) {
        if (rgb565) {
            for (k = 0; k < ROW_CHUNK; k++) {
                w[k] = word_565(get_u16le(src + 2 * (x + k)));
            }
        } else {
            for (k = 0; k < ROW_CHUNK; k++) {
                w[k] = word_x555(get_u16le(src + 2 * (x + k)));
            }
        }
        store_words(dst + 4 * x, w, ROW_CHUNK);
    }
    for (; x < width; x++) {
        uint32_t v = get_u16le(src + 2 * x);
        put_u32le(dst + 4 * x, rgb565 ? word_565(v) : word_x555(v));
    }
}

/* One row of B, G, R bytes as B, G, R, 0 (stride-3 loads: gcc does not vectorize it). */
static void
row_bgr24(const uint8_t *src, uint8_t *dst, size_t width)
{
    for (size_t x = 0; x < width; x++) {
        dst[4 * x] = src[3 * x];
        dst[4 * x + 1] = src[3 * x + 1];
        dst[4 * x + 2] = src[3 * x + 2];
        dst[4 * x + 3] = 0;
    }
}

static int
bitmap_has_palette(int fmt)
{
    return fmt >= BMP_1BIT_LE && fmt <= BMP_8BIT;
}

int
expand_row(int fmt, const uint8_t *src, uint8_t *dst, size_t width, const uint32_t *pal,
           size_t pal_n, size_t src_base, const char *what, DecodeFailure *f)
{
    size_t x;
    unsigned idx;
    switch (fmt) {
    case BMP_1BIT_LE:
    case BMP_1BIT_BE:
        for (x = 0; x < width; x++) {
            unsigned bit = (unsigned)(x & 7u);
            unsigned byte = src[x >> 3];
            idx = fmt == BMP_1BIT_LE ? (byte >> bit) & 1u : (byte >> (7u - bit)) & 1u;
            if (idx >= pal_n) {
                return fail(f, src_base + (x >> 3),
                            "palette index %u in %s is past the palette (%zu entries)", idx,
                            what, pal_n);
            }
            put_u32le(dst + 4 * x, pal[idx]);
        }
        return 0;
    case BMP_4BIT_LE:
    case BMP_4BIT_BE:
        for (x = 0; x < width; x++) {
            unsigned byte = src[x >> 1];
            int low_first = fmt == BMP_4BIT_LE;
            int second = (int)(x & 1u);
            idx = (low_first != second) ? byte & 15u : byte >> 4;
            if (idx >= pal_n) {
                return fail(f, src_base + (x >> 1),
                            "palette index %u in %s is past the palette (%zu entries)", idx,
                            what, pal_n);
            }
            put_u32le(dst + 4 * x, pal[idx]);
        }
        return 0;
    case BMP_8BIT:
        for (x = 0; x < width; x++) {
            idx = src[x];
            if (idx >= pal_n) {
                return fail(f, src_base + x,
                            "palette index %u in %s is past the palette (%zu entries)", idx,
                            what, pal_n);
            }
            put_u32le(dst + 4 * x, pal[idx]);
        }
        return 0;
    case BMP_16BIT:
    case BMP_16BIT_565:
        row_16bit(src, dst, width, fmt == BMP_16BIT_565);
        return 0;
    case BMP_24BIT:
        row_bgr24(src, dst, width);
        return 0;
    case BMP_32BIT:
    case BMP_RGBA:
        memcpy(dst, src, width * 4);
        return 0;
    case BMP_8BIT_A:
        for (x = 0; x < width; x++) {
            dst[4 * x] = dst[4 * x + 1] = dst[4 * x + 2] = 0;
            dst[4 * x + 3] = src[x];
        }
        return 0;
    default:
        return fail(f, 0, "unknown bitmap format %d", fmt);
    }
}

int
bitmap_check(const BitmapSpec *b, size_t in_len, int has_pal, DecodeFailure *f)
{
    unsigned bits = bitmap_bits(b->fmt);
    if (bits == 0) {
        return fail(f, 0, "unknown bitmap format %d", b->fmt);
    }
    if (b->width == 0 || b->height == 0) {
        return fail(f, 0, "empty bitmap %zux%zu", b->width, b->height);
    }
    if (b->width > UINT32_MAX || b->height > UINT32_MAX ||
        (uint64_t)b->width * b->height > MAX_PIXELS) {
        return fail(f, 0, "bitmap %zux%zu is larger than %llu pixels", b->width, b->height,
                    (unsigned long long)MAX_PIXELS);
    }
    uint64_t row = ((uint64_t)b->width * bits + 7) / 8;
    if (b->stride < row) {
        return fail(f, 0, "stride %zu is shorter than a row of %llu bytes", b->stride,
                    (unsigned long long)row);
    }
    if (b->stride > UINT32_MAX) {
        return fail(f, 0, "stride %zu is larger than 2^32", b->stride);
    }
    uint64_t need = (uint64_t)b->stride * (b->height - 1) + row;
    if (need > in_len) {
        return fail(f, in_len, "a %zux%zu bitmap with stride %zu needs %llu bytes, got %zu",
                    b->width, b->height, b->stride, (unsigned long long)need, in_len);
    }
    if (bitmap_has_palette(b->fmt) && !has_pal) {
        return fail(f, 0, "bitmap format %d needs a palette", b->fmt);
    }
    return 0;
}

int
bitmap_body(const uint8_t *in, const BitmapSpec *b, const uint32_t *pal, size_t pal_n,
            uint8_t *out, size_t out_stride, DecodeFailure *f)
{
    size_t r;
    for (r = 0; r < b->height; r++) {
        size_t dst = b->top_down ? r : b->height - 1 - r;
        if (expand_row(b->fmt, in + r * b->stride, out + dst * out_stride, b->width, pal, pal_n,
                       r * b->stride, "the bitmap", f) != 0) {
            return -1;
        }
    }
    return 0;
}
