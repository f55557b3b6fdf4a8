/*
 * What an LZ or GLZ pass produces per unit, and how a run of literal units is written: the
 * two formats share their literal encoding (research/display.md section 1.4).
 *
 * Written for atp-notebook; no code is taken from spice-common or spice-gtk.
 */
#ifndef ATP_CODECS_LZ_UNITS_H
#define ATP_CODECS_LZ_UNITS_H

#include <string.h>

#include "common.h"

enum {
    UNIT_RGB32,   /* literal B,G,R -> B,G,R,0 (RGB24 streams and RGBA's first pass too) */
    UNIT_RGB16,   /* literal big-endian x555 -> B,G,R,0 */
    UNIT_ALPHA,   /* literal A -> byte 3 only; references copy byte 3 only */
    UNIT_A8,      /* literal A -> 0,0,0,A (LZ only) */
    UNIT_BYTE,    /* literal byte -> one byte (palette indexes, packed rows) */
};

/*
 * Write `count` literal units from s to d. `avail` is how many input bytes follow s (at
 * least the run's own, checked by the caller); one more lets RGB32 load 4 bytes a pixel.
 * Always inlined into passes whose kind is a constant, so the switch folds away.
 */
static inline __attribute__((always_inline)) void
copy_literals(int kind, const uint8_t *s, size_t avail, uint8_t *d, size_t count)
{
    size_t i;
    switch (kind) {
    case UNIT_RGB32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (avail > count * 3) {
            /* one 4-byte load per pixel; the byte past the run is in the stream */
            for (i = 0; i < count; i++, s += 3, d += 4) {
                uint32_t v;
                memcpy(&v, s, 4);
                v &= 0x00ffffffu;
                memcpy(d, &v, 4);
            }
            return;
        }
#endif
        for (i = 0; i < count; i++, s += 3, d += 4) {
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
            d[3] = 0;
        }
        return;
    case UNIT_RGB16:
        for (i = 0; i < count; i++, s += 2, d += 4) {
            put_x555(d, ((unsigned)s[0] << 8) | s[1]);
        }
        return;
    case UNIT_ALPHA:
        for (i = 0; i < count; i++, d += 4) {
            d[3] = s[i];
        }
        return;
    case UNIT_A8:
        for (i = 0; i < count; i++, d += 4) {
            d[0] = d[1] = d[2] = 0;
            d[3] = s[i];
        }
        return;
    default:
        memcpy(d, s, count);
        return;
    }
}

#endif
