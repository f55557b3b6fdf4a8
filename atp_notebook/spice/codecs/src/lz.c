/*
 * LZ streams (see lz.h).
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#include "lz.h"

#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "lz_units.h"

#define LZ_LITERAL_LIMIT 32     /* control bytes below this start a literal run */
#define LZ_NEAR_LIMIT 8191      /* the 16-bit far distance is added to this */


int
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
            copy_literals(kind, s, in_len - p, d, count);
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

/* Decode a whole LZ stream whose header `h` was parsed. Runs without the GIL. */
int
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
