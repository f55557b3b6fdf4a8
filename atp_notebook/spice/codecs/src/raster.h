/*
 * Per-pixel compositing for the display's draw operations where numpy is slow: Porter-Duff
 * OVER with 8-bit coverage (alpha_blend, raster text) and ternary raster operations (rop3).
 *
 * Written for atp-notebook from the behaviour described in spice.proto and the project's
 * research notes; no code is taken from spice-common or pixman.
 */
#ifndef ATP_CODECS_RASTER_H
#define ATP_CODECS_RASTER_H

#include <stddef.h>
#include <stdint.h>

/* raster_over flags */
#define OVER_SRC_OPAQUE 1u   /* read the source's alpha byte as 255 */
#define OVER_DEST_OPAQUE 2u  /* read the destination's alpha byte as 255 */
#define OVER_CLEAR_X 4u      /* write 0 into the result's alpha byte (a 32_xRGB surface) */

/* out[i] = src[i] (premultiplied B,G,R,A, scaled by alpha * mask[i] / 255) OVER dst[i],
 * for count pixels; mask may be NULL (coverage 255). out may be dst. */
void raster_over(const uint8_t *src, const uint8_t *dst, const uint8_t *mask, uint8_t *out,
                 size_t count, unsigned alpha, unsigned flags);

/* out[i] = rop3 code of (p, s, d); a NULL-stride input (step 0) repeats its first word. */
void raster_rop3(unsigned code, const uint8_t *p, size_t p_step, const uint8_t *s,
                 size_t s_step, const uint8_t *d, uint8_t *out, size_t count);

#endif
