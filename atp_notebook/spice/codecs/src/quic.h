/*
 * QUIC streams (every QuicImageType) into B, G, R, X rows.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md section 1.4); no code is taken from spice-common.
 */
#ifndef ATP_CODECS_QUIC_H
#define ATP_CODECS_QUIC_H

#include "common.h"
#include "quic_model.h"

enum { QUIC_GRAY = 1, QUIC_RGB16 = 2, QUIC_RGB24 = 3, QUIC_RGB32 = 4, QUIC_RGBA = 5 };

#define QUIC_MAGIC 0x43495551u   /* "QUIC" as a little-endian word */
#define QUIC_VERSION 0u
#define QUIC_HEADER_SIZE 20      /* magic, version, type, width, height: LE u32 words */

typedef struct {
    uint32_t type, width, height;
} QuicHeader;

/* Parse and check the header words; 0 or -1 with `f`. */
int quic_parse_header(const uint8_t *in, size_t in_len, QuicHeader *h, DecodeFailure *f);

/*
 * Decode the stream whose header `h` was parsed into out (rows top-down, out_stride apart,
 * already checked to fit): RGB32/RGB24/RGB16 -> B,G,R,0 (RGB16 widened like x555),
 * RGBA -> B,G,R,A, GRAY -> V,V,V,0, with the code tables `t` (quic_tables_init). Runs
 * without the GIL; 0 or -1 with `f`.
 */
int quic_decode_body(const QuicTables *t, const uint8_t *in, size_t in_len,
                     const QuicHeader *h, uint8_t *out, size_t out_stride, DecodeFailure *f);

#endif
