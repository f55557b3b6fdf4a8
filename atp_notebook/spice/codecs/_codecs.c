/*
 * Spice image decoders: LZ (every LzImageType) and the BITMAP pixel formats.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md sections 1.3 and 1.4); no code is taken from spice-common.
 *
 * Output is always 32-bit pixels in memory byte order B, G, R, X (what a Spice 32_xRGB
 * surface holds), rows top-down, into a caller-supplied writable C-contiguous buffer or a
 * new bytearray. Every read of the input and every write of the output is checked against
 * its bounds; a bad input ends in _codecs.Error(codec, offset, reason), which the Python
 * surface turns into atp_notebook.errors.CodecError. Decoding runs without the GIL.
 * The module keeps no mutable global state: its one exception type lives in module state.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest image we decode, in pixels (16384 x 16384): bounds the memory a header can ask for. */
#define MAX_PIXELS ((uint64_t)1 << 28)

/* ---------------------------------------------------------------------------------------- */
/* errors without the GIL                                                                    */

typedef struct {
    size_t offset;
    char reason[200];
} DecodeFailure;

/* Record the failure and return -1 so callers can write `return fail(...)`. */
static int
fail(DecodeFailure *f, size_t offset, const char *fmt, ...)
{
    va_list ap;
    f->offset = offset;
    va_start(ap, fmt);
    vsnprintf(f->reason, sizeof f->reason, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* palettes and row expansion, shared by LZ_PLT and BITMAP                                   */

/* BITMAP formats (SpiceBitmapFmt). */
enum {
    BMP_1BIT_LE = 1, BMP_1BIT_BE = 2, BMP_4BIT_LE = 3, BMP_4BIT_BE = 4, BMP_8BIT = 5,
    BMP_16BIT = 6, BMP_24BIT = 7, BMP_32BIT = 8, BMP_RGBA = 9, BMP_8BIT_A = 10,
};

static unsigned
bitmap_bits(int fmt)
{
    switch (fmt) {
    case BMP_1BIT_LE: case BMP_1BIT_BE: return 1;
    case BMP_4BIT_LE: case BMP_4BIT_BE: return 4;
    case BMP_8BIT: case BMP_8BIT_A: return 8;
    case BMP_16BIT: return 16;
    case BMP_24BIT: return 24;
    case BMP_32BIT: case BMP_RGBA: return 32;
    default: return 0;
    }
}

static int
bitmap_has_palette(int fmt)
{
    return fmt >= BMP_1BIT_LE && fmt <= BMP_8BIT;
}

static inline void
put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t
get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint32_t
get_u32be(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
           (uint32_t)p[3];
}

/* A 5-bit channel widened to 8 bits (the top bits repeated into the low ones). */
static inline uint8_t
widen5(unsigned v)
{
    v &= 31u;
    return (uint8_t)((v << 3) | (v >> 2));
}

/* One x555 pixel (bits 14-10 red, 9-5 green, 4-0 blue) as B, G, R, 0. */
static inline void
put_x555(uint8_t *dst, unsigned v)
{
    dst[0] = widen5(v);
    dst[1] = widen5(v >> 5);
    dst[2] = widen5(v >> 10);
    dst[3] = 0;
}

/*
 * Expand one row of `width` pixels of format `fmt` from src (which holds at least the row's
 * packed bytes) into dst (width * 4 bytes). Palette entries are u32 0x00RRGGBB (as on the
 * wire); the output X byte of a palette pixel is 0. `src_base` is the offset of src in the
 * input, for error messages. Returns 0, or -1 with `f` filled (a palette index past the end).
 */
static int
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
        for (x = 0; x < width; x++) {
            put_x555(dst + 4 * x, (unsigned)src[2 * x] | ((unsigned)src[2 * x + 1] << 8));
        }
        return 0;
    case BMP_24BIT:
        for (x = 0; x < width; x++) {
            dst[4 * x] = src[3 * x];
            dst[4 * x + 1] = src[3 * x + 1];
            dst[4 * x + 2] = src[3 * x + 2];
            dst[4 * x + 3] = 0;
        }
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

/* Swap rows i and height-1-i of a packed image (row_bytes per row) in place. */
static void
flip_rows(uint8_t *buf, size_t row_bytes, size_t out_stride, size_t height)
{
    uint8_t tmp[256];
    size_t top, bottom;
    for (top = 0, bottom = height - 1; top < bottom; top++, bottom--) {
        uint8_t *a = buf + top * out_stride;
        uint8_t *b = buf + bottom * out_stride;
        size_t done = 0;
        while (done < row_bytes) {
            size_t n = row_bytes - done < sizeof tmp ? row_bytes - done : sizeof tmp;
            memcpy(tmp, a + done, n);
            memcpy(a + done, b + done, n);
            memcpy(b + done, tmp, n);
            done += n;
        }
    }
}

/* Check that an image of width x height fits an output buffer; fills *out_stride if 0. */
static int
check_output(size_t width, size_t height, size_t *out_stride, size_t out_len, size_t at,
             DecodeFailure *f)
{
    uint64_t row = (uint64_t)width * 4;
    if (*out_stride == 0) {
        *out_stride = (size_t)row;
    }
    if (*out_stride < row) {
        return fail(f, at, "an image %zu pixels wide needs an output stride of at least %llu,"
                    " not %zu", width, (unsigned long long)row, *out_stride);
    }
    /* out_stride * (height - 1) + row <= out_len, written so that nothing can wrap */
    if (row > out_len || (height > 1 && (height - 1) > (out_len - row) / *out_stride)) {
        return fail(f, at, "a %zux%zu image with output stride %zu does not fit %zu bytes",
                    width, height, *out_stride, out_len);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* LZ                                                                                         */

enum {
    LZ_PLT1_LE = 1, LZ_PLT1_BE = 2, LZ_PLT4_LE = 3, LZ_PLT4_BE = 4, LZ_PLT8 = 5,
    LZ_RGB16 = 6, LZ_RGB24 = 7, LZ_RGB32 = 8, LZ_RGBA = 9, LZ_XXXA = 10, LZ_A8 = 11,
};

#define LZ_MAGIC 0x20205a4cu
#define LZ_VERSION 0x00010001u
#define LZ_HEADER_SIZE 28
#define LZ_LITERAL_LIMIT 32     /* control bytes below this start a literal run */
#define LZ_NEAR_LIMIT 8191      /* the 16-bit far distance is added to this */

/* What one decoding pass produces per unit (a pixel, or a byte of palette indexes). */
enum {
    UNIT_RGB32,   /* literal B,G,R -> B,G,R,0 (also RGB24 streams) */
    UNIT_RGB16,   /* literal 2 bytes big-endian x555 -> B,G,R,0 */
    UNIT_ALPHA,   /* literal A -> only byte 3 of the pixel; references copy byte 3 only */
    UNIT_A8,      /* literal A -> 0,0,0,A */
    UNIT_BYTE,    /* literal byte -> one byte (palette indexes, packed rows) */
};

typedef struct {
    uint32_t type, width, height, stride, top_down;
} LzHeader;

static int
lz_parse_header(const uint8_t *in, size_t in_len, LzHeader *h, DecodeFailure *f)
{
    if (in_len < LZ_HEADER_SIZE) {
        return fail(f, in_len, "the header needs %d bytes, the stream has %zu", LZ_HEADER_SIZE,
                    in_len);
    }
    uint32_t magic = get_u32be(in), version = get_u32be(in + 4);
    if (magic != LZ_MAGIC) {
        return fail(f, 0, "bad magic 0x%08x (expected 0x%08x)", magic, LZ_MAGIC);
    }
    if (version != LZ_VERSION) {
        return fail(f, 4, "unsupported version 0x%08x (expected 0x%08x)", version, LZ_VERSION);
    }
    h->type = get_u32be(in + 8);
    h->width = get_u32be(in + 12);
    h->height = get_u32be(in + 16);
    h->stride = get_u32be(in + 20);
    h->top_down = get_u32be(in + 24);
    if (h->type < LZ_PLT1_LE || h->type > LZ_A8) {
        return fail(f, 8, "unknown image type %u", h->type);
    }
    if (h->width == 0 || h->height == 0) {
        return fail(f, 12, "empty image %ux%u", h->width, h->height);
    }
    if ((uint64_t)h->width * h->height > MAX_PIXELS) {
        return fail(f, 12, "image %ux%u is larger than %llu pixels", h->width, h->height,
                    (unsigned long long)MAX_PIXELS);
    }
    uint64_t row;
    switch (h->type) {
    case LZ_PLT1_LE: case LZ_PLT1_BE: row = ((uint64_t)h->width + 7) / 8; break;
    case LZ_PLT4_LE: case LZ_PLT4_BE: row = ((uint64_t)h->width + 1) / 2; break;
    case LZ_PLT8: case LZ_A8: row = h->width; break;
    case LZ_RGB16: row = (uint64_t)h->width * 2; break;
    case LZ_RGB24: row = (uint64_t)h->width * 3; break;
    default: row = (uint64_t)h->width * 4; break;
    }
    if (h->stride != row) {
        return fail(f, 20, "stride %u does not match a %s row of %llu bytes", h->stride,
                    "packed", (unsigned long long)row);
    }
    return 0;
}

/*
 * One LZ pass: decode `n` units into `out` from in[*pos..in_len). Units are 4 bytes, or 1
 * byte for UNIT_BYTE. Distances and lengths count units.
 */
static inline __attribute__((always_inline)) int
lz_pass(const uint8_t *in, size_t in_len, size_t *pos, uint8_t *out, size_t n, int kind,
        DecodeFailure *f)
{
    const size_t unit = kind == UNIT_BYTE ? 1 : 4;
    const size_t lit_bytes = kind == UNIT_RGB32 ? 3 : kind == UNIT_RGB16 ? 2 : 1;
    /* the smallest reference length, minus the 1 the control byte's length field adds */
    const size_t bias = kind == UNIT_RGB32 ? 0 : kind == UNIT_RGB16 ? 1 : 2;
    size_t p = *pos;
    size_t op = 0;

    while (op < n) {
        size_t at = p;
        if (p >= in_len) {
            return fail(f, at, "the stream ends with %zu of %zu units still to decode",
                        n - op, n);
        }
        unsigned ctrl = in[p++];
        if (ctrl < LZ_LITERAL_LIMIT) {
            size_t count = (size_t)ctrl + 1;
            if (count > n - op) {
                return fail(f, at, "a literal run of %zu units overruns the image (%zu left)",
                            count, n - op);
            }
            if (count * lit_bytes > in_len - p) {
                return fail(f, at, "a literal run of %zu bytes runs past the end of the stream",
                            count * lit_bytes);
            }
            const uint8_t *s = in + p;
            uint8_t *d = out + op * unit;
            size_t i;
            switch (kind) {
            case UNIT_RGB32:
                for (i = 0; i < count; i++, s += 3, d += 4) {
                    d[0] = s[0];
                    d[1] = s[1];
                    d[2] = s[2];
                    d[3] = 0;
                }
                break;
            case UNIT_RGB16:
                for (i = 0; i < count; i++, s += 2, d += 4) {
                    put_x555(d, ((unsigned)s[0] << 8) | s[1]);
                }
                break;
            case UNIT_ALPHA:
                for (i = 0; i < count; i++, d += 4) {
                    d[3] = s[i];
                }
                break;
            case UNIT_A8:
                for (i = 0; i < count; i++, d += 4) {
                    d[0] = d[1] = d[2] = 0;
                    d[3] = s[i];
                }
                break;
            default:
                memcpy(d, s, count);
                break;
            }
            p += count * lit_bytes;
            op += count;
            continue;
        }

        /* a back reference: length field, optional length bytes, distance byte(s) */
        size_t len = (ctrl >> 5) + bias;
        if ((ctrl >> 5) == 7) {
            unsigned code;
            do {
                if (p >= in_len) {
                    return fail(f, p, "the stream ends inside a reference length");
                }
                code = in[p++];
                len += code;
                if (len > n) {
                    return fail(f, at, "a reference longer than the image (%zu units)", n);
                }
            } while (code == 255);
        }
        if (p >= in_len) {
            return fail(f, p, "the stream ends before a reference distance");
        }
        unsigned low = in[p++];
        size_t dist = ((size_t)(ctrl & 31u) << 8) + low;
        if (low == 255 && (ctrl & 31u) == 31u) {
            if (in_len - p < 2) {
                return fail(f, p, "the stream ends inside a far reference distance");
            }
            dist = LZ_NEAR_LIMIT + (((size_t)in[p] << 8) | in[p + 1]);
            p += 2;
        }
        dist += 1;
        if (dist > op) {
            return fail(f, at, "a reference %zu units back from unit %zu points before the start",
                        dist, op);
        }
        if (len > n - op) {
            return fail(f, at, "a reference of %zu units overruns the image (%zu left)", len,
                        n - op);
        }
        uint8_t *d = out + op * unit;
        const uint8_t *s = d - dist * unit;
        size_t i;
        if (kind == UNIT_ALPHA) {
            for (i = 0; i < len; i++) {
                d[4 * i + 3] = s[4 * i + 3];
            }
        } else if (dist >= len) {
            memcpy(d, s, len * unit);
        } else if (dist == 1 && unit == 4) {
            uint8_t px[4];
            memcpy(px, s, 4);
            for (i = 0; i < len; i++) {
                memcpy(d + 4 * i, px, 4);
            }
        } else if (dist == 1) {
            memset(d, s[0], len);
        } else {
            /* overlapping: copy forward in chunks that never read bytes not yet written */
            size_t bytes = len * unit, chunk = dist * unit, done = 0;
            while (done < bytes) {
                size_t c = bytes - done < chunk ? bytes - done : chunk;
                memcpy(d + done, s + done, c);
                done += c;
            }
        }
        op += len;
    }
    *pos = p;
    return 0;
}

/* One wrapper per unit kind: lz_pass is always inlined, so each gets a loop specialised for
 * its constant kind (the per-unit branches fold away) instead of testing it per byte. */
static int pass_rgb32(const uint8_t *in, size_t len, size_t *pos, uint8_t *out, size_t n,
                      DecodeFailure *f)
{ return lz_pass(in, len, pos, out, n, UNIT_RGB32, f); }
static int pass_rgb16(const uint8_t *in, size_t len, size_t *pos, uint8_t *out, size_t n,
                      DecodeFailure *f)
{ return lz_pass(in, len, pos, out, n, UNIT_RGB16, f); }
static int pass_alpha(const uint8_t *in, size_t len, size_t *pos, uint8_t *out, size_t n,
                      DecodeFailure *f)
{ return lz_pass(in, len, pos, out, n, UNIT_ALPHA, f); }
static int pass_a8(const uint8_t *in, size_t len, size_t *pos, uint8_t *out, size_t n,
                   DecodeFailure *f)
{ return lz_pass(in, len, pos, out, n, UNIT_A8, f); }
static int pass_byte(const uint8_t *in, size_t len, size_t *pos, uint8_t *out, size_t n,
                     DecodeFailure *f)
{ return lz_pass(in, len, pos, out, n, UNIT_BYTE, f); }

/* Copy a packed top-down or bottom-up image (width*4 per row) into out rows top-down. */
static void
place_rows(const uint8_t *packed, size_t width, size_t height, int top_down, uint8_t *out,
           size_t out_stride)
{
    size_t r, row = width * 4;
    for (r = 0; r < height; r++) {
        size_t dst = top_down ? r : height - 1 - r;
        memcpy(out + dst * out_stride, packed + r * row, row);
    }
}

/* The inverse of place_rows (for XXXA, which keeps the B, G, R bytes already in out). */
static void
gather_rows(uint8_t *packed, size_t width, size_t height, int top_down, const uint8_t *out,
            size_t out_stride)
{
    size_t r, row = width * 4;
    for (r = 0; r < height; r++) {
        size_t src = top_down ? r : height - 1 - r;
        memcpy(packed + r * row, out + src * out_stride, row);
    }
}

/* Decode a whole LZ stream whose header `h` was parsed. Runs without the GIL. */
static int
lz_decode_body(const uint8_t *in, size_t in_len, const LzHeader *h, const uint32_t *pal,
               size_t pal_n, int has_pal, uint8_t *out, size_t out_stride, DecodeFailure *f)
{
    size_t width = h->width, height = h->height, pos = LZ_HEADER_SIZE;
    int top_down = h->top_down != 0;
    int rc;

    if (h->type <= LZ_PLT8) {
        static const int fmt_of[] = {0, BMP_1BIT_LE, BMP_1BIT_BE, BMP_4BIT_LE, BMP_4BIT_BE,
                                     BMP_8BIT};
        size_t stride = h->stride, r;
        if (!has_pal) {
            return fail(f, 8, "a palette image (type %u) needs a palette", h->type);
        }
        uint8_t *idx = malloc(stride * height);
        if (idx == NULL) {
            return fail(f, 0, "out of memory for %zu bytes of palette indexes", stride * height);
        }
        rc = pass_byte(in, in_len, &pos, idx, stride * height, f);
        if (rc == 0 && pos != in_len) {
            rc = fail(f, pos, "%zu bytes left over after the image", in_len - pos);
        }
        for (r = 0; rc == 0 && r < height; r++) {
            size_t dst = top_down ? r : height - 1 - r;
            rc = expand_row(fmt_of[h->type], idx + r * stride, out + dst * out_stride, width,
                            pal, pal_n, r * stride, "the decoded indexes", f);
        }
        free(idx);
        return rc;
    }

    size_t n = width * height;
    int direct = out_stride == width * 4;
    uint8_t *buf = out;
    if (!direct) {
        buf = malloc(n * 4);
        if (buf == NULL) {
            return fail(f, 0, "out of memory for %zu pixels", n);
        }
        if (h->type == LZ_XXXA) {
            gather_rows(buf, width, height, top_down, out, out_stride);
        }
    } else if (h->type == LZ_XXXA && !top_down) {
        flip_rows(buf, width * 4, out_stride, height);
    }

    switch (h->type) {
    case LZ_RGB16: rc = pass_rgb16(in, in_len, &pos, buf, n, f); break;
    case LZ_RGB24:
    case LZ_RGB32: rc = pass_rgb32(in, in_len, &pos, buf, n, f); break;
    case LZ_RGBA:
        rc = pass_rgb32(in, in_len, &pos, buf, n, f);
        if (rc == 0) {
            rc = pass_alpha(in, in_len, &pos, buf, n, f);
        }
        break;
    case LZ_XXXA: rc = pass_alpha(in, in_len, &pos, buf, n, f); break;
    default: rc = pass_a8(in, in_len, &pos, buf, n, f); break;
    }
    if (rc == 0 && pos != in_len) {
        rc = fail(f, pos, "%zu bytes left over after the image", in_len - pos);
    }
    if (!direct) {
        if (rc == 0) {
            place_rows(buf, width, height, top_down, out, out_stride);
        }
        free(buf);
    } else if (!top_down && (rc == 0 || h->type == LZ_XXXA)) {
        flip_rows(buf, width * 4, out_stride, height);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* BITMAP                                                                                     */

typedef struct {
    int fmt;
    size_t width, height, stride;
    int top_down;
} BitmapSpec;

static int
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

static int
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

/* ---------------------------------------------------------------------------------------- */
/* Python glue                                                                                */

typedef struct {
    PyObject *error;
} ModuleState;

static PyObject *
raise_failure(PyObject *module, const char *codec, const DecodeFailure *f)
{
    ModuleState *st = PyModule_GetState(module);
    PyObject *args = Py_BuildValue("(sns)", codec, (Py_ssize_t)f->offset, f->reason);
    if (args != NULL) {
        PyErr_SetObject(st->error, args);
        Py_DECREF(args);
    }
    return NULL;
}

/* Read a palette buffer (little-endian u32 entries) into `table`; 0 or -1 with a Python error. */
static int
load_palette(PyObject *obj, uint32_t **table, size_t *n)
{
    Py_buffer view;
    *table = NULL;
    *n = 0;
    if (obj == Py_None) {
        return 0;
    }
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) != 0) {
        return -1;
    }
    if (view.len % 4 != 0 || view.len / 4 > 65536) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError,
                        "a palette is up to 65536 little-endian u32 entries (len % 4 == 0)");
        return -1;
    }
    size_t count = (size_t)view.len / 4, i;
    uint32_t *t = PyMem_Malloc(count ? count * 4 : 4);
    if (t == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < count; i++) {
        /* B, G, R from the entry; the output's X byte is 0 for palette pixels */
        t[i] = get_u32le((const uint8_t *)view.buf + 4 * i) & 0x00ffffffu;
    }
    PyBuffer_Release(&view);
    *table = t;
    *n = count;
    return 1;
}

/* Get the output buffer: the caller's (writable, C-contiguous) or a new bytearray. */
static int
acquire_output(PyObject *out_arg, size_t stride, size_t height, PyObject **out_obj,
               Py_buffer *view)
{
    if (out_arg == Py_None) {
        size_t need = stride * height;
        if (height != 0 && stride > (size_t)PY_SSIZE_T_MAX / height) {
            PyErr_NoMemory();
            return -1;
        }
        *out_obj = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)need);
        if (*out_obj == NULL) {
            return -1;
        }
        memset(PyByteArray_AS_STRING(*out_obj), 0, need);
    } else {
        Py_INCREF(out_arg);
        *out_obj = out_arg;
    }
    if (PyObject_GetBuffer(*out_obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) {
        Py_CLEAR(*out_obj);
        return -1;
    }
    return 0;
}

static PyObject *
py_lz_decode(PyObject *module, PyObject *args)
{
    Py_buffer in;
    PyObject *out_arg, *pal_arg, *out_obj = NULL, *result = NULL;
    Py_ssize_t out_stride_arg;
    Py_buffer out;
    uint32_t *pal = NULL;
    size_t pal_n = 0;
    LzHeader h;
    DecodeFailure f;
    int has_pal, rc;

    if (!PyArg_ParseTuple(args, "y*OnO:lz_decode", &in, &out_arg, &out_stride_arg, &pal_arg)) {
        return NULL;
    }
    if (out_stride_arg < 0) {
        PyErr_SetString(PyExc_ValueError, "out_stride must be >= 0 (0: width * 4)");
        goto done_in;
    }
    if (lz_parse_header(in.buf, (size_t)in.len, &h, &f) != 0) {
        raise_failure(module, "lz", &f);
        goto done_in;
    }
    size_t out_stride = (size_t)out_stride_arg;
    size_t need_stride = out_stride ? out_stride : (size_t)h.width * 4;
    if ((has_pal = load_palette(pal_arg, &pal, &pal_n)) < 0) {
        goto done_in;
    }
    if (out_arg == Py_None && need_stride < (size_t)h.width * 4) {
        need_stride = (size_t)h.width * 4;  /* check_output reports the bad stride */
    }
    if (acquire_output(out_arg, need_stride, h.height, &out_obj, &out) != 0) {
        goto done_pal;
    }
    rc = check_output(h.width, h.height, &out_stride, (size_t)out.len, 12, &f);
    if (rc == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = lz_decode_body(in.buf, (size_t)in.len, &h, pal, pal_n, has_pal, out.buf,
                            out_stride, &f);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&out);
    if (rc != 0) {
        raise_failure(module, "lz", &f);
    } else {
        result = Py_BuildValue("(IIIIO)", h.type, h.width, h.height, h.top_down ? 1u : 0u,
                               out_obj);
    }
    Py_DECREF(out_obj);
done_pal:
    PyMem_Free(pal);
done_in:
    PyBuffer_Release(&in);
    return result;
}

static PyObject *
py_bitmap_decode(PyObject *module, PyObject *args)
{
    Py_buffer in, out;
    int fmt, top_down;
    Py_ssize_t width, height, stride, out_stride_arg;
    PyObject *pal_arg, *out_arg, *out_obj = NULL, *result = NULL;
    uint32_t *pal = NULL;
    size_t pal_n = 0;
    DecodeFailure f;
    int has_pal, rc;

    if (!PyArg_ParseTuple(args, "iy*nnnpOOn:bitmap_decode", &fmt, &in, &width, &height,
                          &stride, &top_down, &pal_arg, &out_arg, &out_stride_arg)) {
        return NULL;
    }
    if (width < 0 || height < 0 || stride < 0 || out_stride_arg < 0) {
        PyErr_SetString(PyExc_ValueError, "sizes must be >= 0");
        goto done_in;
    }
    BitmapSpec b = {fmt, (size_t)width, (size_t)height, (size_t)stride, top_down};
    if ((has_pal = load_palette(pal_arg, &pal, &pal_n)) < 0) {
        goto done_in;
    }
    if (bitmap_check(&b, (size_t)in.len, has_pal, &f) != 0) {
        raise_failure(module, "bitmap", &f);
        goto done_pal;
    }
    size_t out_stride = (size_t)out_stride_arg;
    size_t need_stride = out_stride > b.width * 4 ? out_stride : b.width * 4;
    if (acquire_output(out_arg, need_stride, b.height, &out_obj, &out) != 0) {
        goto done_pal;
    }
    rc = check_output(b.width, b.height, &out_stride, (size_t)out.len, 0, &f);
    if (rc == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = bitmap_body(in.buf, &b, pal, pal_n, out.buf, out_stride, &f);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&out);
    if (rc != 0) {
        raise_failure(module, "bitmap", &f);
    } else {
        result = Py_NewRef(out_obj);
    }
    Py_DECREF(out_obj);
done_pal:
    PyMem_Free(pal);
done_in:
    PyBuffer_Release(&in);
    return result;
}

static PyMethodDef codecs_methods[] = {
    {"lz_decode", py_lz_decode, METH_VARARGS,
     "lz_decode(data, out, out_stride, palette) -> (type, width, height, top_down, out)"},
    {"bitmap_decode", py_bitmap_decode, METH_VARARGS,
     "bitmap_decode(fmt, data, width, height, stride, top_down, palette, out, out_stride)"
     " -> out"},
    {NULL, NULL, 0, NULL},
};

static int
codecs_exec(PyObject *module)
{
    ModuleState *st = PyModule_GetState(module);
    st->error = PyErr_NewExceptionWithDoc(
        "atp_notebook.spice.codecs._codecs.Error",
        "Bad compressed data: args are (codec, offset, reason).", PyExc_ValueError, NULL);
    if (st->error == NULL) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "Error", st->error);
}

static int
codecs_traverse(PyObject *module, visitproc visit, void *arg)
{
    ModuleState *st = PyModule_GetState(module);
    Py_VISIT(st->error);
    return 0;
}

static int
codecs_clear(PyObject *module)
{
    ModuleState *st = PyModule_GetState(module);
    Py_CLEAR(st->error);
    return 0;
}

static void
codecs_free(void *module)
{
    codecs_clear((PyObject *)module);
}

static PyModuleDef_Slot codecs_slots[] = {
    {Py_mod_exec, codecs_exec},
    {0, NULL},
};

static struct PyModuleDef codecs_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_codecs",
    .m_doc = "Spice image decoders (LZ, BITMAP) into B,G,R,X pixels; see codecs/__init__.py.",
    .m_size = sizeof(ModuleState),
    .m_methods = codecs_methods,
    .m_slots = codecs_slots,
    .m_traverse = codecs_traverse,
    .m_clear = codecs_clear,
    .m_free = codecs_free,
};

PyMODINIT_FUNC
PyInit__codecs(void)
{
    return PyModuleDef_Init(&codecs_module);
}
