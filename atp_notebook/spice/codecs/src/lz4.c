/*
 * LZ4 images (see lz4_image.h). The LZ4 blocks themselves are decoded by liblz4.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md sections 1.4 and 8); no code is taken from spice-common.
 */
#include "lz4_image.h"

#include <limits.h>
#include <stdlib.h>

#include <lz4.h>

#include "bitmap.h"

/* LZ4 matches reach at most this far back, so a block needs no more of what came before. */
#define LZ4_WINDOW 65536

static size_t
lz4_bpp(int fmt)
{
    switch (fmt) {
    case BMP_16BIT: return 2;
    case BMP_24BIT: return 3;
    case BMP_32BIT: case BMP_RGBA: return 4;
    default: return 0;
    }
}

int
lz4_parse(const uint8_t *in, size_t in_len, size_t width, size_t height, Lz4Spec *s,
          DecodeFailure *f)
{
    if (in_len < LZ4_IMAGE_HEADER) {
        return fail(f, in_len, "the header needs %d bytes, the data has %zu", LZ4_IMAGE_HEADER,
                    in_len);
    }
    s->top_down = in[0] != 0;
    s->fmt = in[1];
    size_t bpp = lz4_bpp(s->fmt);
    if (bpp == 0) {
        return fail(f, 1, "bitmap format %d is not one LZ4 carries (6, 7, 8 or 9)", s->fmt);
    }
    if (width == 0 || height == 0) {
        return fail(f, 0, "empty image %zux%zu", width, height);
    }
    if (width > UINT32_MAX || height > UINT32_MAX ||
        (uint64_t)width * height > MAX_PIXELS) {
        return fail(f, 0, "image %zux%zu is larger than %llu pixels", width, height,
                    (unsigned long long)MAX_PIXELS);
    }
    s->width = width;
    s->height = height;
    s->row = width * bpp;
    /* each LZ4 input byte yields at most 255 output bytes (a 255 match-length byte) */
    uint64_t total = (uint64_t)s->row * height;
    if (total > (uint64_t)in_len * 255) {
        return fail(f, in_len, "%zu bytes of LZ4 cannot hold a %zux%zu image (%llu bytes)",
                    in_len, width, height, (unsigned long long)total);
    }
    return 0;
}

/* Decode every block into buf (total bytes); each block may refer back into the earlier
 * ones (LZ4_compress_fast_continue on the server), so buf is one contiguous run. */
static int
lz4_blocks(const uint8_t *in, size_t in_len, uint8_t *buf, size_t total, DecodeFailure *f)
{
    size_t pos = LZ4_IMAGE_HEADER, done = 0;
    if (pos == in_len) {
        return fail(f, pos, "no LZ4 block after the header");
    }
    while (pos < in_len) {
        if (done == total) {
            return fail(f, pos, "%zu bytes left over after the image's %zu bytes",
                        in_len - pos, total);
        }
        if (in_len - pos < 4) {
            return fail(f, pos, "a block size needs 4 bytes, %zu are left", in_len - pos);
        }
        uint32_t size = get_u32be(in + pos);
        if (size == 0 || size > in_len - pos - 4 || size > LZ4_MAX_INPUT_SIZE) {
            return fail(f, pos, "a block of %u bytes, %zu are left", size, in_len - pos - 4);
        }
        pos += 4;
        size_t dict = done < LZ4_WINDOW ? done : LZ4_WINDOW;
        size_t room = total - done;  /* <= 2^30 (MAX_PIXELS * 4), fits an int */
        int n = LZ4_decompress_safe_usingDict((const char *)in + pos, (char *)buf + done,
                                              (int)size, (int)room,
                                              (const char *)buf + done - dict, (int)dict);
        if (n < 0) {
            /* liblz4 returns -(offset of the error in the block) - 1 */
            size_t at = (size_t)-(n + 1);
            return fail(f, pos + (at < size ? at : size),
                        "the LZ4 block at %zu is corrupt or decodes past the image's end"
                        " (%zu bytes left of %zu)", pos - 4, room, total);
        }
        if (n == 0) {
            return fail(f, pos, "the LZ4 block at %zu decodes to nothing", pos - 4);
        }
        done += (size_t)n;
        pos += size;
    }
    if (done != total) {
        return fail(f, in_len, "the blocks decode to %zu bytes, the image needs %zu", done,
                    total);
    }
    return 0;
}

int
lz4_decode_body(const uint8_t *in, size_t in_len, const Lz4Spec *s, uint8_t *out,
                size_t out_stride, DecodeFailure *f)
{
    size_t total = s->row * s->height, r;
    /* 32BIT and RGBA rows are already B, G, R, X: decode straight into a packed output */
    if ((s->fmt == BMP_32BIT || s->fmt == BMP_RGBA) && out_stride == s->row) {
        int rc = lz4_blocks(in, in_len, out, total, f);
        if (rc == 0 && !s->top_down) {
            flip_rows(out, s->row, out_stride, s->height);
        }
        return rc;
    }
    uint8_t *buf = malloc(total);
    if (buf == NULL) {
        return fail(f, 0, "out of memory for %zu bytes", total);
    }
    int rc = lz4_blocks(in, in_len, buf, total, f);
    for (r = 0; rc == 0 && r < s->height; r++) {
        size_t dst = s->top_down ? r : s->height - 1 - r;
        rc = expand_row(s->fmt, buf + r * s->row, out + dst * out_stride, s->width, NULL, 0,
                        r * s->row, "the decoded rows", f);
    }
    free(buf);
    return rc;
}
