/*
 * Compositing loops of the display's draw operations (see raster.h).
 *
 * Written for atp-notebook from the behaviour described in spice.proto and the project's
 * research notes; no code is taken from spice-common or pixman.
 */
#include "raster.h"

#include "common.h"

/* Each byte of x times a / 255, rounded to nearest (the rounding pixman's 8-bit paths use,
 * so results equal spice-gtk's software canvas). Two bytes at a time in 16-bit lanes: a
 * product is at most 65025 + 128, so no lane carries into the next. */
static inline uint32_t
mul4_un8(uint32_t x, unsigned a)
{
    uint32_t rb = (x & 0x00ff00ffu) * a + 0x00800080u;
    uint32_t ag = ((x >> 8) & 0x00ff00ffu) * a + 0x00800080u;
    rb = ((rb + ((rb >> 8) & 0x00ff00ffu)) >> 8) & 0x00ff00ffu;
    ag = (ag + ((ag >> 8) & 0x00ff00ffu)) & 0xff00ff00u;
    return rb | ag;
}

/* Bytewise x + y, each byte saturated at 255 (a lane's bit 8 set becomes 0xff). */
static inline uint32_t
add4_sat(uint32_t x, uint32_t y)
{
    uint32_t rb = (x & 0x00ff00ffu) + (y & 0x00ff00ffu);
    uint32_t ag = ((x >> 8) & 0x00ff00ffu) + ((y >> 8) & 0x00ff00ffu);
    rb = (rb | (0x01000100u - ((rb >> 8) & 0x00ff00ffu))) & 0x00ff00ffu;
    ag = (ag | (0x01000100u - ((ag >> 8) & 0x00ff00ffu))) & 0x00ff00ffu;
    return rb | (ag << 8);
}

void
raster_over(const uint8_t *src, const uint8_t *dst, const uint8_t *mask, uint8_t *out,
            size_t count, unsigned alpha, unsigned flags)
{
    uint32_t s_or = (flags & OVER_SRC_OPAQUE) ? 0xff000000u : 0;
    uint32_t d_or = (flags & OVER_DEST_OPAQUE) ? 0xff000000u : 0;
    uint32_t keep_mask = (flags & OVER_CLEAR_X) ? 0x00ffffffu : 0xffffffffu;
    for (size_t i = 0; i < count; i++) {
        uint32_t s = get_u32le(src + 4 * i) | s_or;
        uint32_t d = get_u32le(dst + 4 * i) | d_or;
        unsigned m = alpha;
        if (mask) {
            uint32_t t = alpha * mask[i] + 0x80u;
            m = ((t >> 8) + t) >> 8;
        }
        if (m != 255u) {
            s = mul4_un8(s, m);
        }
        /* read both before the write: out may alias dst */
        put_u32le(out + 4 * i, add4_sat(s, mul4_un8(d, 255u - (s >> 24))) & keep_mask);
    }
}

void
raster_rop3(unsigned code, const uint8_t *p, size_t p_step, const uint8_t *s, size_t s_step,
            const uint8_t *d, uint8_t *out, size_t count)
{
    code &= 0xffu;
    for (size_t i = 0; i < count; i++) {
        uint32_t pv = get_u32le(p + p_step * i), sv = get_u32le(s + s_step * i);
        uint32_t dv = get_u32le(d + 4 * i), r = 0;
        /* the OR of the minterms whose bit is set: bit (p << 2 | s << 1 | d) of code */
        for (unsigned k = 0; k < 8; k++) {
            if (code >> k & 1u) {
                r |= ((k & 4u) ? pv : ~pv) & ((k & 2u) ? sv : ~sv) & ((k & 1u) ? dv : ~dv);
            }
        }
        put_u32le(out + 4 * i, r);
    }
}
