/*
 * GLZ streams and the dictionary ("window") of decoded images they reference.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md sections 1.4, 1.5 and 8); no code is taken from spice-gtk,
 * spice-common or spice-server.
 *
 * A GLZ image is LZ-like, but a back reference may point into an earlier image of the same
 * session ("image distance" images back), so every GLZ image is kept, decoded, in a window
 * shared by all display channels of the session. Images are numbered from 0 by the server,
 * one id per image; two channels deliver them in any interleaving, so a reference may name an
 * image that has not arrived yet: the decode waits for it (bounded by a deadline).
 */
#ifndef ATP_CODECS_GLZ_H
#define ATP_CODECS_GLZ_H

#include "common.h"

#define GLZ_MAGIC 0x20205a4cu     /* "  ZL", as LZ */
#define GLZ_VERSION 0x00010001u
#define GLZ_HEADER_SIZE 33        /* magic, version, type byte, w, h, stride, u64 id, dist */
/* spice-server refuses a larger window (LZ_MAX_WINDOW_SIZE, in pixels) */
#define GLZ_MAX_WINDOW ((uint64_t)1 << 25)
/* What the window charges per image beyond its pixels (the record, the slot), in pixels. */
#define GLZ_IMAGE_OVERHEAD 16

/* LzImageType values a GLZ stream can carry (XXXA and A8 are LZ-only). */
enum {
    GLZ_PLT1_LE = 1, GLZ_PLT1_BE = 2, GLZ_PLT4_LE = 3, GLZ_PLT4_BE = 4, GLZ_PLT8 = 5,
    GLZ_RGB16 = 6, GLZ_RGB24 = 7, GLZ_RGB32 = 8, GLZ_RGBA = 9,
};

typedef struct {
    uint32_t type, width, height, stride;
    int top_down;
    uint64_t id;
    uint32_t win_head_dist;   /* the oldest image this one may reference is id - this */
    size_t units;             /* what the passes count: pixels, or bytes of palette indexes */
    uint64_t pixels;          /* the image's size as the server's window counts it */
} GlzHeader;

/* Parse and check the 33-byte big-endian header; 0 or -1 with `f`. */
int glz_parse_header(const uint8_t *in, size_t in_len, GlzHeader *h, DecodeFailure *f);

typedef struct GlzWindow GlzWindow;
typedef struct GlzImage GlzImage;

typedef struct {
    size_t images;            /* decoded images held (failed ids not counted) */
    uint64_t pixels;          /* their pixels */
    unsigned waiting;         /* decodes waiting for an image that has not arrived */
    int closed;
} GlzWindowStats;

/* A window of `max_pixels` (1 .. GLZ_MAX_WINDOW); NULL when out of memory. */
GlzWindow *glz_window_new(uint64_t max_pixels);
/* Free the window; no decode may be using it. */
void glz_window_free(GlzWindow *w);
/* Drop every image and fail every waiter: with "window closed" for good, or "window cleared"
 * (a display reset) after which the window starts again from image id 0. */
void glz_window_close(GlzWindow *w);
void glz_window_clear(GlzWindow *w);
uint64_t glz_window_max_pixels(const GlzWindow *w);
void glz_window_stats(GlzWindow *w, GlzWindowStats *s);
/* Copy up to `max` ids of the decoded images held, ascending; returns how many are held. */
size_t glz_window_ids(GlzWindow *w, uint64_t *ids, size_t max);

/*
 * Decode one stream (header `h` parsed from it) into a new image that is not yet in the
 * window; references to earlier images wait up to `timeout` seconds for them (0: no wait).
 * On failure `*img` is NULL and the image id is recorded as failed in the window, so that
 * decodes referencing it fail at once instead of waiting. Runs without the GIL.
 */
int glz_decode_image(GlzWindow *w, const uint8_t *in, size_t in_len, const GlzHeader *h,
                     double timeout, GlzImage **img, DecodeFailure *f);

/*
 * Write a decoded image into out (rows top-down, out_stride apart, 0: width * 4; PLT types
 * expanded with `pal`), then put it in the window, which owns it from then on. The image is
 * kept even when out cannot take it: later images may reference it. out may be NULL (only
 * keep it). Returns 0, or -1 with `f` (the output's failure first). Runs without the GIL.
 */
int glz_finish_image(GlzWindow *w, GlzImage *img, const uint32_t *pal, size_t pal_n,
                     int has_pal, uint8_t *out, size_t out_len, size_t out_stride,
                     DecodeFailure *f);

/* --- between glz.c and glz_window.c ------------------------------------------------ */

struct GlzImage {
    uint64_t id;
    uint64_t head;            /* id - win_head_dist */
    uint64_t generation;      /* the window's generation when the decode started */
    uint64_t pixels;
    size_t units;
    uint32_t type, width, height, stride;
    int top_down;
    int failed;               /* a recorded failure: no data */
    unsigned refs;            /* 1 while in the window, +1 per decode that uses it */
    uint8_t *data;            /* units * (4, or 1 for palette indexes), stream order */
};

#define GLZ_REF_CACHE 16

/* What one decode needs from the window: its identity and the images it pinned. */
typedef struct {
    GlzWindow *w;
    const GlzHeader *h;
    uint64_t generation;
    int wait;
    double timeout;
    struct { int64_t sec; long nsec; } deadline;
    struct {
        uint64_t dist;        /* 0: empty */
        const uint8_t *data;
        size_t units;
    } cache[GLZ_REF_CACHE];
    GlzImage **pins;
    size_t npins, pins_cap;
} GlzRefs;

/* Check the image may enter the window (not closed, not a duplicate, not too large nor too
 * old) and set up `r`; 0 or -1 with `f`. Records a too-large image as failed. */
int glz_refs_begin(GlzRefs *r, GlzWindow *w, const GlzHeader *h, double timeout,
                   DecodeFailure *f);
/* Find (waiting if need be) and pin the image `dist` back; 0 or -1 with `f` (`at`: offset). */
int glz_refs_fetch(GlzRefs *r, uint64_t dist, size_t at, const uint8_t **data, size_t *units,
                   DecodeFailure *f);
/* Unpin everything `r` pinned. */
void glz_refs_end(GlzRefs *r);
/* Record the image of `h` as failed (a no-op when the window moved on or it is there). */
void glz_window_record_failure(GlzWindow *w, const GlzHeader *h, uint64_t generation);
/* Put a decoded image in the window (which owns it even on failure); 0 or -1 with `f`. */
int glz_window_insert(GlzWindow *w, GlzImage *img, DecodeFailure *f);

#endif
