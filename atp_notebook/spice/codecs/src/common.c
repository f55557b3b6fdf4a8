/*
 * Shared pieces of the C decoders (see common.h).
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
fail(DecodeFailure *f, size_t offset, const char *fmt, ...)
{
    va_list ap;
    f->offset = offset;
    va_start(ap, fmt);
    vsnprintf(f->reason, sizeof f->reason, fmt, ap);
    va_end(ap);
    return -1;
}


void
flip_rows(uint8_t *buf, size_t row_bytes, size_t out_stride, size_t height)
{
    uint8_t tmp[4096];  /* 256 bytes made a bottom-up 1024x768 LZ4 image 1.6x slower */
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
int
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

void
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
void
gather_rows(uint8_t *packed, size_t width, size_t height, int top_down, const uint8_t *out,
            size_t out_stride)
{
    size_t r, row = width * 4;
    for (r = 0; r < height; r++) {
        size_t src = top_down ? r : height - 1 - r;
        memcpy(packed + r * row, out + src * out_stride, row);
    }
}
