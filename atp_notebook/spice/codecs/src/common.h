/*
 * Shared pieces of the C decoders: the failure record, byte access, output checks.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#ifndef ATP_CODECS_COMMON_H
#define ATP_CODECS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Largest image we decode, in pixels (16384 x 16384): bounds the memory a header can ask for. */
#define MAX_PIXELS ((uint64_t)1 << 28)

/* A decode failure, recorded without the GIL and raised as _codecs.Error afterwards. */
typedef struct {
    size_t offset;
    char reason[200];
} DecodeFailure;

/* Record the failure and return -1 so callers can write `return fail(...)`. */
int fail(DecodeFailure *f, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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

/* Swap rows i and height-1-i of a packed image (row_bytes per row) in place. */
void flip_rows(uint8_t *buf, size_t row_bytes, size_t out_stride, size_t height);

/* Check that an image of width x height fits an output buffer; fills *out_stride if 0. */
int check_output(size_t width, size_t height, size_t *out_stride, size_t out_len, size_t at,
                 DecodeFailure *f);

/* Copy a packed top-down or bottom-up image (width*4 per row) into out rows top-down. */
void place_rows(const uint8_t *packed, size_t width, size_t height, int top_down, uint8_t *out,
                size_t out_stride);

/* The inverse of place_rows (for XXXA, which keeps the B, G, R bytes already in out). */
void gather_rows(uint8_t *packed, size_t width, size_t height, int top_down, const uint8_t *out,
                 size_t out_stride);

#endif
