/*
 * LZ4 images as spice-server 0.15 sends them, into B, G, R, X rows.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md sections 1.4 and 8); no code is taken from spice-common.
 * (Not named lz4.h: that is liblz4's own header.)
 */
#ifndef ATP_CODECS_LZ4_IMAGE_H
#define ATP_CODECS_LZ4_IMAGE_H

#include "common.h"

/* u8 top_down, u8 SpiceBitmapFmt; then blocks of [u32 big-endian size][LZ4 block]. */
#define LZ4_IMAGE_HEADER 2

typedef struct {
    int top_down;
    int fmt;            /* SpiceBitmapFmt: 16BIT (x555), 24BIT, 32BIT or RGBA */
    size_t width, height;
    size_t row;         /* width * bytes per pixel: rows are packed, no stride padding */
} Lz4Spec;

/* Read the 2-byte header and check the image descriptor's size against it and against the
 * input length (LZ4 expands a byte to at most 255), before any output is allocated. */
int lz4_parse(const uint8_t *in, size_t in_len, size_t width, size_t height, Lz4Spec *s,
              DecodeFailure *f);

/* Decode the linked blocks and convert them into out (rows top-down, out_stride apart,
 * already checked to fit). Runs without the GIL. */
int lz4_decode_body(const uint8_t *in, size_t in_len, const Lz4Spec *s, uint8_t *out,
                    size_t out_stride, DecodeFailure *f);

#endif
