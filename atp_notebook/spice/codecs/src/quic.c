/*
 * QUIC streams (see quic.h); the model lives in quic_model.h.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md section 1.4), the behaviour checked against spice-common
 * common/quic.c and quic_tmpl.c; no code is taken from spice-common.
 *
 * The stream is little-endian 32-bit words read most significant bit first. Each channel
 * value is predicted from its left and upper neighbours ((a + b) / 2; the left one alone in
 * the first row, the upper one alone in the first column), the prediction error folded to
 * 0, 1, 2 ... (0, -1, +1, ...) and Golomb coded with the code its context's bucket chose.
 * Where the row above repeats and the two pixels to the left are equal, a melcode run
 * length may follow instead. Pixels are decoded straight into the output rows: the row
 * above is read back from there as the upper neighbours.
 */
#include "quic.h"

#include <stdlib.h>
#include <string.h>

#include "quic_bits.h"

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) QUIC_UNLIKELY(x)
#define INLINE QUIC_INLINE

typedef struct {
    const QuicFamily *fam;
    QuicChannel ch[4];
    QuicState color, alpha;   /* R,G,B (or gray) share one schedule; alpha has its own */
    QuicReader r;
    size_t width, stride;
    uint8_t *out;
} Decoder;

INLINE uint32_t
load32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

INLINE void
store32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

/* The prediction error folded back: 0, 1, 2, 3 ... -> 0, -1, +1, -2 ... (mod 2^bpc). */
INLINE unsigned
unfold(unsigned v)
{
    return (v >> 1) ^ (0u - (v & 1u));
}

/* One channel value of pixel i: the code its context's bucket chose, the codeword, the
 * prediction added back. Returns the value (bpc bits). A refill leaves >= 56 bits: enough
 * for two codewords of at most 26, so every other codeword skips it (fill 0). */
INLINE unsigned
channel(QuicBits *b, const uint8_t *bits, const QuicFamily *fam, QuicChannel *ch, unsigned *ctx,
        unsigned *seen, size_t i, unsigned pred, unsigned mask, const int fill)
{
    if (fill) {
        quic_refill(b, bits);
    }
    unsigned v = quic_read_code(b, fam, ch, *ctx, seen) & mask;
    ch->corr[i + 1] = (uint8_t)v;
    *ctx = v;
    return (unfold(v) + pred) & mask;
}

/*
 * One segment [i, end) of a row: pixels, model updates after random waits and, below the
 * first row, runs. nch 3 decodes R, G, B into bytes 2, 1, 0 of each pixel (the X byte 0);
 * nch 1 decodes one channel into byte shift / 8 (0: gray, 3: alpha). Values stay bpc bits.
 */
INLINE int
segment(Decoder *d, QuicState *s, QuicChannel *chs, uint8_t *cur, const uint8_t *prev,
        size_t i, const size_t end, const unsigned waitmask, const unsigned nch,
        const unsigned shift, const unsigned bpc, const int row0)
{
    const QuicFamily *fam = d->fam;
    const uint8_t *bits = d->r.bits;
    const unsigned mask = (1u << bpc) - 1;
    /* a pixel's channels packed at bits 16, 8, 0 (nch 3) or 0 (nch 1) */
    const uint32_t pmask = nch == 3 ? 0x00ffffffu : 0xffu;
    QuicBits b = d->r.b;
    unsigned seen = 0, ctx0 = chs[0].corr[i], ctx1 = 0, ctx2 = 0;
    size_t stopidx, run_index = 0;
    uint32_t left = 0, left2 = 0;   /* the two pixels to the left */
    uint32_t above_left = 0;        /* the pixel above the left one */

#define PIX(row, x) ((load32((row) + 4 * (x)) >> shift) & pmask)
#define STORE(x, px) (nch == 3 || shift == 0 ? store32(cur + 4 * (x), px) \
                                             : (void)(cur[4 * (x) + shift / 8] = (uint8_t)(px)))
/* decode pixel x into px, each channel predicted by PRED(its left value, its upper one) */
#define DECODE(x, px, PRED)                                                                 \
    do {                                                                                    \
        if (nch == 3) {                                                                     \
            unsigned r_ = channel(&b, bits, fam, &chs[0], &ctx0, &seen, x,                  \
                                  PRED((left >> 16) & 0xffu, (above >> 16) & 0xffu), mask, \
                                  1);                                                       \
            unsigned g_ = channel(&b, bits, fam, &chs[1], &ctx1, &seen, x,                  \
                                  PRED((left >> 8) & 0xffu, (above >> 8) & 0xffu), mask,   \
                                  0);                                                       \
            unsigned b_ = channel(&b, bits, fam, &chs[2], &ctx2, &seen, x,                  \
                                  PRED(left & 0xffu, above & 0xffu), mask, 1);              \
            px = (r_ << 16) | (g_ << 8) | b_;                                               \
        } else {                                                                            \
            px = channel(&b, bits, fam, &chs[0], &ctx0, &seen, x, PRED(left, above), mask,  \
                         1);                                                                \
        }                                                                                   \
    } while (0)
#define PRED_NONE(a, up) 0u
#define PRED_UP(a, up) (up)
#define PRED_LEFT(a, up) (a)
#define PRED_AVG(a, up) (((a) + (up)) >> 1)
#define UPDATE(x)                                                                           \
    do {                                                                                    \
        for (unsigned c_ = 0; c_ < nch; c_++) {                                             \
            quic_update(fam, &chs[c_], chs[c_].corr[x], chs[c_].corr[(x) + 1],              \
                        s->wm_trigger, bpc);                                                \
        }                                                                                   \
    } while (0)

    if (nch == 3) {
        ctx1 = chs[1].corr[i];
        ctx2 = chs[2].corr[i];
    }
    if (i >= 1) {
        left = PIX(cur, i - 1);
    }
    if (i >= 2) {
        left2 = PIX(cur, i - 2);
    }
    if (!row0 && i >= 1) {
        above_left = PIX(prev, i - 1);
    }
    if (i == 0) {
        uint32_t above = row0 ? 0 : PIX(prev, 0), px;
        if (row0) {
            DECODE(0, px, PRED_NONE);
        } else {
            DECODE(0, px, PRED_UP);
        }
        STORE(0, px);
        left = px;
        above_left = above;
        if (s->waitcnt) {
            s->waitcnt--;
        } else {
            s->waitcnt = quic_next_wait(s, waitmask);
            UPDATE(0);
        }
        i = 1;
        stopidx = 1 + s->waitcnt;
    } else {
        stopidx = i + s->waitcnt;
    }

    while (i < end) {
        uint32_t above = 0, px;
        if (row0) {
            DECODE(i, px, PRED_LEFT);
        } else {
            above = PIX(prev, i);
            if (above_left == above && left == left2 && run_index != i && i > 2) {
                size_t wait = stopidx - i, n;
                run_index = i;
                quic_refill(&b, bits);
                unsigned ones = (unsigned)__builtin_clz(~(uint32_t)(b.acc >> 32) | 0xffu);
                if (LIKELY(ones < 24)) {
                    /* the common short run, inline: a few whole expected runs, a 0, then
                     * melclen bits of remainder (<= 24 + 15 bits: one refill is enough) */
                    n = 0;
                    for (unsigned k = 0; k < ones; k++) {
                        n += (size_t)1 << s->melclen;
                        if (s->melcstate < QUIC_MEL_STATES - 1) {
                            s->melclen = quic_mel_len[++s->melcstate];
                        }
                    }
                    quic_consume(&b, ones + 1);
                    n += (size_t)((b.acc >> 1) >> (63 - s->melclen));
                    quic_consume(&b, s->melclen);
                    if (s->melcstate) {
                        s->melclen = quic_mel_len[--s->melcstate];
                    }
                } else {
                    d->r.b = b;
                    if (quic_read_run(&d->r, s, &n) != 0) {
                        return -1;
                    }
                    b = d->r.b;
                }
                if (UNLIKELY(n > end - i)) {
                    return fail(d->r.f, quic_bit_pos(&b) / 32 * 4, "a run of %zu pixels passes the"
                                " end of the row segment (%zu left)", n, end - i);
                }
                for (size_t k = 0; k < n; k++, i++) {
                    STORE(i, left);
                }
                if (n) {
                    above_left = PIX(prev, i - 1);
                }
                if (i == end) {
                    s->waitcnt = (unsigned)wait;
                    goto done;
                }
                stopidx = i + wait;
                /* contexts: the coded values left in the row (runs code none) */
                ctx0 = chs[0].corr[i];
                if (nch == 3) {
                    ctx1 = chs[1].corr[i];
                    ctx2 = chs[2].corr[i];
                }
                continue;
            }
            DECODE(i, px, PRED_AVG);
            above_left = above;
        }
        STORE(i, px);
        left2 = left;
        left = px;
        if (UNLIKELY(i == stopidx)) {
            UPDATE(i);
            stopidx = i + 1 + quic_next_wait(s, waitmask);
            d->r.b = b;
            d->r.seen |= seen;
            if (quic_reader_check(&d->r) != 0) {
                return -1;
            }
        }
        i++;
    }
    s->waitcnt = (unsigned)(stopidx - end);
done:
    d->r.b = b;
    d->r.seen |= seen;
    return quic_reader_check(&d->r);
#undef PIX
#undef STORE
#undef DECODE
#undef PRED_NONE
#undef PRED_UP
#undef PRED_LEFT
#undef PRED_AVG
#undef UPDATE
}

/*
 * One row of one pass: split where the state's wait mask grows (every 2048 pixels until
 * it reaches 2^6 - 1), each piece a segment; runs never cross a segment's end.
 */
INLINE int
row(Decoder *d, QuicState *s, QuicChannel *chs, size_t y, const unsigned nch,
    const unsigned shift, const unsigned bpc)
{
    uint8_t *cur = d->out + y * d->stride;
    const uint8_t *prev = y ? cur - d->stride : cur;
    size_t left = d->width, pos = 0;
    unsigned c;
    int rc;

    for (c = 0; c < nch; c++) {
        /* the context of pixel 0 is pixel 0's value in the row above (0 in the first) */
        chs[c].corr[0] = y ? chs[c].corr[1] : 0;
    }
#define SEG(from, to, wm) \
    (y == 0 ? segment(d, s, chs, cur, prev, from, to, wm, nch, shift, bpc, 1) \
            : segment(d, s, chs, cur, prev, from, to, wm, nch, shift, bpc, 0))
    while (s->wmidx < QUIC_WMI_MAX && s->wmileft <= left) {
        if (s->wmileft) {
            rc = SEG(pos, pos + s->wmileft, (1u << s->wmidx) - 1);
            if (rc != 0) {
                return rc;
            }
            pos += s->wmileft;
            left -= s->wmileft;
        }
        quic_next_wmi(s);
    }
    if (left) {
        rc = SEG(pos, pos + left, (1u << s->wmidx) - 1);
        if (rc != 0) {
            return rc;
        }
        if (s->wmidx < QUIC_WMI_MAX) {
            s->wmileft -= (unsigned)left;
        }
    }
#undef SEG
    return 0;
}

/* RGB16 rows hold 5-bit values until the row below is decoded: widen them like x555. */
static void
widen_row(uint8_t *p, size_t width)
{
    for (size_t x = 0; x < width; x++, p += 4) {
        uint32_t v = load32(p);
        store32(p, (v << 3) | ((v >> 2) & 0x070707u));
    }
}

/* GRAY rows hold the value in byte 0 until the row below is decoded: V, V, V, 0. */
static void
gray_row(uint8_t *p, size_t width)
{
    for (size_t x = 0; x < width; x++, p += 4) {
        store32(p, (load32(p) & 0xffu) * 0x010101u);
    }
}

static int
decode_rgb8(Decoder *d, size_t height)
{
    for (size_t y = 0; y < height; y++) {
        if (row(d, &d->color, d->ch, y, 3, 0, 8) != 0) {
            return -1;
        }
    }
    return 0;
}

static int
decode_rgb16(Decoder *d, size_t height)
{
    for (size_t y = 0; y < height; y++) {
        if (row(d, &d->color, d->ch, y, 3, 0, 5) != 0) {
            return -1;
        }
        if (y) {
            widen_row(d->out + (y - 1) * d->stride, d->width);
        }
    }
    widen_row(d->out + (height - 1) * d->stride, d->width);
    return 0;
}

/* RGBA: each row is an R,G,B pass, then a pass over its alpha channel alone. */
static int
decode_rgba(Decoder *d, size_t height)
{
    for (size_t y = 0; y < height; y++) {
        if (row(d, &d->color, d->ch, y, 3, 0, 8) != 0 ||
            row(d, &d->alpha, d->ch + 3, y, 1, 24, 8) != 0) {
            return -1;
        }
    }
    return 0;
}

static int
decode_gray(Decoder *d, size_t height)
{
    for (size_t y = 0; y < height; y++) {
        if (row(d, &d->color, d->ch, y, 1, 0, 8) != 0) {
            return -1;
        }
        if (y) {
            gray_row(d->out + (y - 1) * d->stride, d->width);
        }
    }
    gray_row(d->out + (height - 1) * d->stride, d->width);
    return 0;
}

int
quic_parse_header(const uint8_t *in, size_t in_len, QuicHeader *h, DecodeFailure *f)
{
    if (in_len < QUIC_HEADER_SIZE) {
        return fail(f, in_len, "the header needs %d bytes, the stream has %zu",
                    QUIC_HEADER_SIZE, in_len);
    }
    uint32_t magic = get_u32le(in), version = get_u32le(in + 4);
    if (magic != QUIC_MAGIC) {
        return fail(f, 0, "bad magic 0x%08x (expected 0x%08x, \"QUIC\")", magic, QUIC_MAGIC);
    }
    if (version != QUIC_VERSION) {
        return fail(f, 4, "unsupported version 0x%08x (expected 0x%08x)", version,
                    QUIC_VERSION);
    }
    h->type = get_u32le(in + 8);
    h->width = get_u32le(in + 12);
    h->height = get_u32le(in + 16);
    if (h->type < QUIC_GRAY || h->type > QUIC_RGBA) {
        return fail(f, 8, "unknown image type %u", h->type);
    }
    if (h->width == 0 || h->height == 0) {
        return fail(f, 12, "empty image %ux%u", h->width, h->height);
    }
    if ((uint64_t)h->width * h->height > MAX_PIXELS) {
        return fail(f, 12, "image %ux%u is larger than %llu pixels", h->width, h->height,
                    (unsigned long long)MAX_PIXELS);
    }
    /* Every codeword is at least 1 bit: the first row codes each pixel, later rows at
     * least their first 3 pixels and then a run or more pixels. A stream shorter than that
     * (plus the 32-bit window after the last codeword) cannot hold the image: refuse it
     * before anyone allocates the output for a hostile size. */
    uint64_t w = h->width, need = 0;
    for (unsigned nch = h->type == QUIC_GRAY ? 1 : 3, pass = 0;
         pass < (h->type == QUIC_RGBA ? 2u : 1u); pass++, nch = 1) {
        need += nch * w + (uint64_t)(h->height - 1) * (nch * (w < 3 ? w : 3) + (w > 3));
    }
    if ((uint64_t)(in_len / 4) * 32 < QUIC_HEADER_SIZE * 8 + need + 32) {
        return fail(f, in_len, "%zu bytes cannot hold a %ux%u image (at least %llu bits)",
                    in_len, h->width, h->height, (unsigned long long)need);
    }
    return 0;
}

int
quic_decode_body(const QuicTables *t, const uint8_t *in, size_t in_len, const QuicHeader *h,
                 uint8_t *out, size_t out_stride, DecodeFailure *f)
{
    unsigned nch = h->type == QUIC_RGBA ? 4 : h->type == QUIC_GRAY ? 1 : 3, c;
    size_t width = h->width;
    int rc;
    Decoder *d = calloc(1, sizeof *d);
    /* one context row per channel, each width + 1 values */
    uint8_t *corr = calloc(nch, width + 1);
    if (d == NULL || corr == NULL) {
        free(d);
        free(corr);
        return fail(f, 12, "out of memory for a %zu pixels wide decoder", width);
    }
    d->fam = h->type == QUIC_RGB16 ? &t->bpc5 : &t->bpc8;
    if (quic_reader_open(&d->r, in, in_len, d->fam->bpc, f) != 0) {
        free(d);
        free(corr);
        return -1;
    }
    for (c = 0; c < nch; c++) {
        d->ch[c].corr = corr + c * (width + 1);
        quic_channel_reset(&d->ch[c], d->fam);
    }
    quic_state_reset(&d->color);
    quic_state_reset(&d->alpha);
    d->width = width;
    d->out = out;
    d->stride = out_stride;

    switch (h->type) {
    case QUIC_RGB32:
    case QUIC_RGB24:
        rc = decode_rgb8(d, h->height);
        break;
    case QUIC_RGB16:
        rc = decode_rgb16(d, h->height);
        break;
    case QUIC_RGBA:
        rc = decode_rgba(d, h->height);
        break;
    default:
        rc = decode_gray(d, h->height);
        break;
    }
    quic_reader_close(&d->r);
    free(corr);
    free(d);
    return rc;
}
