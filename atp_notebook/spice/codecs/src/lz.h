/*
 * LZ streams (every LzImageType) into B, G, R, X rows.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#ifndef ATP_CODECS_LZ_H
#define ATP_CODECS_LZ_H

#include "common.h"

enum {
    LZ_PLT1_LE = 1, LZ_PLT1_BE = 2, LZ_PLT4_LE = 3, LZ_PLT4_BE = 4, LZ_PLT8 = 5,
    LZ_RGB16 = 6, LZ_RGB24 = 7, LZ_RGB32 = 8, LZ_RGBA = 9, LZ_XXXA = 10, LZ_A8 = 11,
};

#define LZ_MAGIC 0x20205a4cu
#define LZ_VERSION 0x00010001u
#define LZ_HEADER_SIZE 28

typedef struct {
    uint32_t type, width, height, stride, top_down;
} LzHeader;

/* Parse and check the 28-byte big-endian header; 0 or -1 with `f`. */
int lz_parse_header(const uint8_t *in, size_t in_len, LzHeader *h, DecodeFailure *f);

/*
 * Decode a whole LZ stream whose header `h` was parsed into out (rows top-down, out_stride
 * apart, already checked to fit). PLT types need `pal` (has_pal). Runs without the GIL.
 */
int lz_decode_body(const uint8_t *in, size_t in_len, const LzHeader *h, const uint32_t *pal,
                   size_t pal_n, int has_pal, uint8_t *out, size_t out_stride, DecodeFailure *f);

#endif
