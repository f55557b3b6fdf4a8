/*
 * BITMAP images: every SpiceBitmapFmt expanded to B, G, R, X rows (also LZ_PLT's last step).
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#ifndef ATP_CODECS_BITMAP_H
#define ATP_CODECS_BITMAP_H

#include "common.h"

/* BITMAP formats (SpiceBitmapFmt). */
enum {
    BMP_1BIT_LE = 1, BMP_1BIT_BE = 2, BMP_4BIT_LE = 3, BMP_4BIT_BE = 4, BMP_8BIT = 5,
    BMP_16BIT = 6, BMP_24BIT = 7, BMP_32BIT = 8, BMP_RGBA = 9, BMP_8BIT_A = 10,
    /* Not a wire value: 16-bit pixels laid out as a 16_565 surface (bits 15-11 red, 10-5
     * green, 4-0 blue). SpiceBitmapFmt 16BIT is always x555. */
    BMP_16BIT_565 = 0x100 | BMP_16BIT,
};

typedef struct {
    int fmt;
    size_t width, height, stride;
    int top_down;
} BitmapSpec;

/*
 * Expand one row of `width` pixels of format `fmt` from src (which holds at least the row's
 * packed bytes) into dst (width * 4 bytes). Palette entries are u32 0x00RRGGBB (as on the
 * wire); the output X byte of a palette pixel is 0. `src_base` is the offset of src in the
 * input, for error messages. Returns 0, or -1 with `f` filled (a palette index past the end).
 */
int expand_row(int fmt, const uint8_t *src, uint8_t *dst, size_t width, const uint32_t *pal,
               size_t pal_n, size_t src_base, const char *what, DecodeFailure *f);

/* Check a bitmap's geometry against its input length and palette; 0 or -1 with `f`. */
int bitmap_check(const BitmapSpec *b, size_t in_len, int has_pal, DecodeFailure *f);

/* Convert a checked bitmap into out (rows top-down, out_stride apart). Runs without the GIL. */
int bitmap_body(const uint8_t *in, const BitmapSpec *b, const uint32_t *pal, size_t pal_n,
                uint8_t *out, size_t out_stride, DecodeFailure *f);

#endif
