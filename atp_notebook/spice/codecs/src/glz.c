/*
 * GLZ streams (see glz.h): the header, the decoding passes, the output.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md sections 1.4, 1.5 and 8); no code is taken from spice-gtk,
 * spice-common or spice-server.
 *
 * Body: a control byte < 32 starts ctrl + 1 literal units. Otherwise it is a reference:
 * length ctrl >> 5 (7: bytes follow, added while 255), bit 4 the long-offset form, bits 0-3
 * the low pixel offset bits; then a byte of offset bits 4-11; then a byte whose top two bits
 * count the bytes that follow. Short form: its low 6 bits and the following bytes (<< 6,
 * << 14, << 22) are the image distance. Long form: bit 5 says one more offset byte (bits
 * 17-24) ends the reference, bits 0-4 are offset bits 12-16, the following bytes the image
 * distance (<< 0, << 8, << 16). Image distance 0: a copy from this image, offset + 1 units
 * back; otherwise from image (id - distance), `offset` units after its start. Lengths count
 * from 1 unit for RGB24/RGB32, 2 for RGB16, 3 for palette indexes and the alpha pass.
 */
#include "glz.h"

#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "lz_units.h"

#define GLZ_LITERAL_LIMIT 32


static uint64_t
get_u64be(const uint8_t *p)
{
    return ((uint64_t)get_u32be(p) << 32) | get_u32be(p + 4);
}

static int
is_plt(uint32_t type)
{
    return type <= GLZ_PLT8;
}

int
glz_parse_header(const uint8_t *in, size_t in_len, GlzHeader *h, DecodeFailure *f)
{
    if (in_len < GLZ_HEADER_SIZE) {
        return fail(f, in_len, "the header needs %d bytes, the stream has %zu",
                    GLZ_HEADER_SIZE, in_len);
    }
    uint32_t magic = get_u32be(in), version = get_u32be(in + 4);
    if (magic != GLZ_MAGIC) {
        return fail(f, 0, "bad magic 0x%08x (expected 0x%08x)", magic, GLZ_MAGIC);
    }
    if (version != GLZ_VERSION) {
        return fail(f, 4, "unsupported version 0x%08x (expected 0x%08x)", version,
                    GLZ_VERSION);
    }
    h->type = in[8] & 15u;
    if (in[8] >> 4 > 1) {
        return fail(f, 8, "bad type byte 0x%02x (type | top_down << 4)", in[8]);
    }
    h->top_down = in[8] >> 4;
    h->width = get_u32be(in + 9);
    h->height = get_u32be(in + 13);
    h->stride = get_u32be(in + 17);
    h->id = get_u64be(in + 21);
    h->win_head_dist = get_u32be(in + 29);
    if (h->type < GLZ_PLT1_LE || h->type > GLZ_RGBA) {
        return fail(f, 8, "image type %u is not one GLZ carries", h->type);
    }
    if (h->width == 0 || h->height == 0) {
        return fail(f, 9, "empty image %ux%u", h->width, h->height);
    }
    if ((uint64_t)h->width * h->height > MAX_PIXELS) {
        return fail(f, 9, "image %ux%u is larger than %llu pixels", h->width, h->height,
                    (unsigned long long)MAX_PIXELS);
    }
    uint64_t row, per_byte = 1;
    switch (h->type) {
    case GLZ_PLT1_LE: case GLZ_PLT1_BE: row = ((uint64_t)h->width + 7) / 8; per_byte = 8; break;
    case GLZ_PLT4_LE: case GLZ_PLT4_BE: row = ((uint64_t)h->width + 1) / 2; per_byte = 2; break;
    case GLZ_PLT8: row = h->width; break;
    case GLZ_RGB16: row = (uint64_t)h->width * 2; break;
    case GLZ_RGB24: row = (uint64_t)h->width * 3; break;
    default: row = (uint64_t)h->width * 4; break;
    }
    if (h->stride != row) {
        return fail(f, 17, "stride %u does not match a packed row of %llu bytes", h->stride,
                    (unsigned long long)row);
    }
    if (is_plt(h->type)) {
        h->units = (size_t)row * h->height;
        h->pixels = row * per_byte * h->height;
    } else {
        h->units = (size_t)h->width * h->height;
        h->pixels = h->units;
    }
    if (h->win_head_dist > h->id) {
        return fail(f, 29, "win_head_dist %u reaches before image 0 (this is image %llu)",
                    h->win_head_dist, (unsigned long long)h->id);
    }
    return 0;
}

/* The image `dist` back: from the decode's small cache, else from the window. */
static inline __attribute__((always_inline)) int
ref_image(GlzRefs *r, uint64_t dist, size_t at, const uint8_t **data, size_t *units,
          DecodeFailure *f)
{
    unsigned c = (unsigned)dist & (GLZ_REF_CACHE - 1);
    if (r->cache[c].dist == dist) {
        *data = r->cache[c].data;
        *units = r->cache[c].units;
        return 0;
    }
    if (glz_refs_fetch(r, dist, at, data, units, f) != 0) {
        return -1;
    }
    r->cache[c].dist = dist;
    r->cache[c].data = *data;
    r->cache[c].units = *units;
    return 0;
}

/* Copy `bytes` from `s` to `d` = s + period (period < bytes): a repeating pattern. */
static void
copy_overlapping(uint8_t *d, const uint8_t *s, size_t bytes, size_t period)
{
    size_t done = 0;
    while (done < bytes) {
        /* s .. d + done already holds the pattern, and done is a multiple of the period */
        size_t c = period + done;
        if (c > bytes - done) {
            c = bytes - done;
        }
        memcpy(d + done, s, c);
        done += c;
    }
}

/* Copy `len` pixels forward two at a time, from at least 2 pixels back or another buffer:
 * short copies (text averages under 6 pixels) cost less inline than a memcpy call. */
static inline __attribute__((always_inline)) void
copy_short_pixels(uint8_t *d, const uint8_t *s, size_t len)
{
    size_t i = 0;
    for (; i + 2 <= len; i += 2) {
        memcpy(d + 4 * i, s + 4 * i, 8);
    }
    if (i < len) {
        memcpy(d + 4 * i, s + 4 * i, 4);
    }
}

#define SHORT_COPY 16   /* pixels: below this copy_short_pixels, above it memcpy */

/* One pass: `n` units into `out` from in[*pos..]; units are 4 bytes, or 1 for UNIT_BYTE. */
static inline __attribute__((always_inline)) int
glz_pass(GlzRefs *r, const uint8_t *in, size_t in_len, size_t *pos, uint8_t *out, size_t n,
         int kind, DecodeFailure *f)
{
    const size_t unit = kind == UNIT_BYTE ? 1 : 4;
    const size_t lit_bytes = kind == UNIT_RGB32 ? 3 : kind == UNIT_RGB16 ? 2 : 1;
    const size_t bias = kind == UNIT_RGB32 ? 0 : kind == UNIT_RGB16 ? 1 : 2;
    size_t p = *pos, op = 0;

    while (op < n) {
        size_t at = p;
        if (p >= in_len) {
            return fail(f, at, "the stream ends with %zu of %zu units still to decode",
                        n - op, n);
        }
        unsigned ctrl = in[p++];
        if (ctrl < GLZ_LITERAL_LIMIT) {
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
            copy_literals(kind, s, in_len - p, d, count);
            p += count * lit_bytes;
            op += count;
            continue;
        }

        size_t len = ctrl >> 5;
        unsigned long_form = (ctrl >> 4) & 1u;
        size_t ofs = ctrl & 15u;
        if (len == 7) {
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
        if (in_len - p < 2) {
            return fail(f, at, "the stream ends inside a reference");
        }
        ofs += (size_t)in[p++] << 4;
        unsigned code = in[p++];
        unsigned extra = code >> 6;
        uint64_t dist;
        if (in_len - p < extra + (long_form && (code & 32u) ? 1u : 0u)) {
            return fail(f, at, "the stream ends inside a reference");
        }
        if (!long_form) {
            dist = code & 63u;
            for (unsigned i = 0; i < extra; i++) {
                dist += (uint64_t)in[p++] << (6 + 8 * i);
            }
        } else {
            int longer = (code & 32u) != 0;
            ofs += (size_t)(code & 31u) << 12;
            dist = 0;
            for (unsigned i = 0; i < extra; i++) {
                dist += (uint64_t)in[p++] << (8 * i);
            }
            if (longer) {
                ofs += (size_t)in[p++] << 17;
            }
        }
        len += bias;
        if (len > n - op) {
            return fail(f, at, "a reference of %zu units overruns the image (%zu left)", len,
                        n - op);
        }
        uint8_t *d = out + op * unit;
        size_t i;
        if (dist == 0) {
            ofs += 1;
            if (ofs > op) {
                return fail(f, at, "a reference %zu units back from unit %zu points before"
                            " the start", ofs, op);
            }
            const uint8_t *s = d - ofs * unit;
            if (kind == UNIT_ALPHA) {
                for (i = 0; i < len; i++) {
                    d[4 * i + 3] = s[4 * i + 3];
                }
            } else if (unit == 4 && ofs >= 2 && len <= SHORT_COPY) {
                copy_short_pixels(d, s, len);
            } else if (ofs >= len) {
                memcpy(d, s, len * unit);
            } else if (ofs == 1 && unit == 4) {
                uint32_t px;
                memcpy(&px, s, 4);
                for (i = 0; i < len; i++) {
                    memcpy(d + 4 * i, &px, 4);
                }
            } else if (ofs == 1) {
                memset(d, s[0], len);
            } else {
                copy_overlapping(d, s, len * unit, ofs * unit);
            }
        } else {
            const uint8_t *src;
            size_t units;
            if (ref_image(r, dist, at, &src, &units, f) != 0) {
                return -1;
            }
            if (ofs > units || len > units - ofs) {
                return fail(f, at, "a reference to units %zu..%zu of image %llu, which has %zu",
                            ofs, ofs + len, (unsigned long long)(r->h->id - dist), units);
            }
            src += ofs * unit;
            if (kind == UNIT_ALPHA) {
                for (i = 0; i < len; i++) {
                    d[4 * i + 3] = src[4 * i + 3];
                }
            } else if (unit == 4 && len <= SHORT_COPY) {
                copy_short_pixels(d, src, len);
            } else {
                memcpy(d, src, len * unit);
            }
        }
        op += len;
    }
    *pos = p;
    return 0;
}

/* One wrapper per unit kind: glz_pass is inlined into a loop specialised for each. */
static int pass_rgb32(GlzRefs *r, const uint8_t *in, size_t len, size_t *pos, uint8_t *out,
                      size_t n, DecodeFailure *f)
{ return glz_pass(r, in, len, pos, out, n, UNIT_RGB32, f); }
static int pass_rgb16(GlzRefs *r, const uint8_t *in, size_t len, size_t *pos, uint8_t *out,
                      size_t n, DecodeFailure *f)
{ return glz_pass(r, in, len, pos, out, n, UNIT_RGB16, f); }
static int pass_alpha(GlzRefs *r, const uint8_t *in, size_t len, size_t *pos, uint8_t *out,
                      size_t n, DecodeFailure *f)
{ return glz_pass(r, in, len, pos, out, n, UNIT_ALPHA, f); }
static int pass_byte(GlzRefs *r, const uint8_t *in, size_t len, size_t *pos, uint8_t *out,
                     size_t n, DecodeFailure *f)
{ return glz_pass(r, in, len, pos, out, n, UNIT_BYTE, f); }

int
glz_decode_image(GlzWindow *w, const uint8_t *in, size_t in_len, const GlzHeader *h,
                 double timeout, GlzImage **img_out, DecodeFailure *f)
{
    GlzRefs r;
    *img_out = NULL;
    if (glz_refs_begin(&r, w, h, timeout, f) != 0) {
        return -1;
    }
    size_t unit = is_plt(h->type) ? 1 : 4;
    GlzImage *img = malloc(sizeof *img + h->units * unit);
    if (img == NULL) {
        fail(f, 9, "out of memory for an image of %zu units", h->units);
        glz_window_record_failure(w, h, r.generation);
        return -1;
    }
    *img = (GlzImage){
        .id = h->id, .head = h->id - h->win_head_dist, .generation = r.generation,
        .pixels = h->pixels, .units = h->units, .type = h->type, .width = h->width,
        .height = h->height, .stride = h->stride, .top_down = h->top_down, .refs = 1,
        .data = (uint8_t *)(img + 1),
    };
    size_t pos = GLZ_HEADER_SIZE, n = h->units;
    int rc;
    switch (h->type) {
    case GLZ_RGB16: rc = pass_rgb16(&r, in, in_len, &pos, img->data, n, f); break;
    case GLZ_RGB24:
    case GLZ_RGB32: rc = pass_rgb32(&r, in, in_len, &pos, img->data, n, f); break;
    case GLZ_RGBA:
        rc = pass_rgb32(&r, in, in_len, &pos, img->data, n, f);
        if (rc == 0) {
            rc = pass_alpha(&r, in, in_len, &pos, img->data, n, f);
        }
        break;
    default: rc = pass_byte(&r, in, in_len, &pos, img->data, n, f); break;
    }
    if (rc == 0 && pos != in_len) {
        rc = fail(f, pos, "%zu bytes left over after the image", in_len - pos);
    }
    glz_refs_end(&r);
    if (rc != 0) {
        free(img);
        glz_window_record_failure(w, h, r.generation);
        return -1;
    }
    *img_out = img;
    return 0;
}

/* Write the image's rows into out, top-down (palette indexes expanded). */
static int
place_image(const GlzImage *img, const uint32_t *pal, size_t pal_n, int has_pal, uint8_t *out,
            size_t out_stride, DecodeFailure *f)
{
    size_t width = img->width, height = img->height;
    if (!is_plt(img->type)) {
        place_rows(img->data, width, height, img->top_down, out, out_stride);
        return 0;
    }
    static const int fmt_of[] = {0, BMP_1BIT_LE, BMP_1BIT_BE, BMP_4BIT_LE, BMP_4BIT_BE,
                                 BMP_8BIT};
    if (!has_pal) {
        return fail(f, 8, "a palette image (type %u) needs a palette; GLZ_RGB carries none",
                    img->type);
    }
    for (size_t row = 0; row < height; row++) {
        size_t dst = img->top_down ? row : height - 1 - row;
        if (expand_row(fmt_of[img->type], img->data + row * img->stride,
                       out + dst * out_stride, width, pal, pal_n, row * img->stride,
                       "the decoded indexes", f) != 0) {
            return -1;
        }
    }
    return 0;
}

int
glz_finish_image(GlzWindow *w, GlzImage *img, const uint32_t *pal, size_t pal_n,
                 int has_pal, uint8_t *out, size_t out_len, size_t out_stride,
                 DecodeFailure *f)
{
    int rc = 0;
    if (out != NULL) {
        rc = check_output(img->width, img->height, &out_stride, out_len, 9, f);
        if (rc == 0) {
            rc = place_image(img, pal, pal_n, has_pal, out, out_stride, f);
        }
    }
    DecodeFailure kept;
    if (glz_window_insert(w, img, &kept) != 0 && rc == 0) {
        *f = kept;
        rc = -1;
    }
    return rc;
}
