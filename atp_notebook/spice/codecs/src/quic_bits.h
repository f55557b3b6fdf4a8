/*
 * The QUIC bit reader: codewords and melcode run lengths from a stream of little-endian
 * 32-bit words read most significant bit first, and the check that it has not run out.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md section 1.4), the behaviour checked against spice-common
 * common/quic.c; no code is taken from spice-common.
 */
#ifndef ATP_CODECS_QUIC_BITS_H
#define ATP_CODECS_QUIC_BITS_H

#include <string.h>

#include "common.h"
#include "quic_model.h"

#define QUIC_INLINE static inline __attribute__((always_inline))
#define QUIC_UNLIKELY(x) __builtin_expect(!!(x), 0)

/*
 * The words are copied byte-swapped (most significant byte first) with QUIC_PAD zero bytes
 * after them, so the hot loop loads 8 bytes wherever it is without a bounds check: between
 * two checks of the position (after model updates and segments) it decodes at most 64
 * pixels of 3 codewords of <= 26 bits and 65 short runs of <= 39 bits, so it reads no
 * further than that past the last word (the long runs check for themselves).
 */
#define QUIC_PAD 2048
_Static_assert((64 * 3 * 26 + 65 * 39 + 63) / 8 + 8 + 4 < QUIC_PAD, "QUIC_PAD too small");

/* The bits not yet consumed: the top `nbits` of `acc`; `at` is the next byte to load. */
typedef struct {
    uint64_t acc;
    unsigned nbits;
    size_t at;
} QuicBits;

typedef struct {
    QuicBits b;
    uint8_t *bits;            /* the byte-swapped copy, 4 * nwords + QUIC_PAD bytes */
    size_t nwords, end_bit;   /* a position past end_bit: the stream ran out */
    size_t in_len;
    unsigned seen, bpc;       /* every value decoded, ORed: a bit above bpc = bad */
    DecodeFailure *f;
} QuicReader;

/* Copy the stream (whole words; at least the 5 header words) and start after the header.
 * 0, or -1 with `f` (no memory). quic_reader_close frees the copy. */
int quic_reader_open(QuicReader *r, const uint8_t *in, size_t in_len, unsigned bpc,
                     DecodeFailure *f);
void quic_reader_close(QuicReader *r);

/* 0, or -1 with `f` if the stream ran out or a codeword decoded past the levels. */
int quic_reader_check(QuicReader *r);

/* A codeword too long for the table (acc holds >= 32 bits). */
unsigned quic_read_long_code(QuicBits *b, const QuicCode *k, unsigned l, unsigned *seen);

/* A melcode run of any length (the hot loop decodes short ones itself). 0 with the length
 * in *out (more than any row once it passes 2^30), or -1 with `f` when the stream ran out. */
int quic_read_run(QuicReader *r, QuicState *s, size_t *out);

/* Top up acc to 56..63 valid bits, branch-free (F. Giesen's "variant 4" refill). */
QUIC_INLINE void
quic_refill(QuicBits *b, const uint8_t *bits)
{
    uint64_t v;
    memcpy(&v, bits + b->at, 8);
    b->acc |= __builtin_bswap64(v) >> b->nbits;
    b->at += (63u - b->nbits) >> 3;
    b->nbits |= 56u;
}

QUIC_INLINE void
quic_consume(QuicBits *b, unsigned n)
{
    b->acc <<= n;
    b->nbits -= n;
}

/* The position of the next unread bit. */
QUIC_INLINE size_t
quic_bit_pos(const QuicBits *b)
{
    return b->at * 8 - b->nbits;
}

/* One codeword of channel ch in context ctx (acc holds >= 32 bits): by table when it is
 * short, which is almost always. A value past the levels is ORed into *seen. */
QUIC_INLINE unsigned
quic_read_code(QuicBits *b, const QuicFamily *fam, const QuicChannel *ch, unsigned ctx,
               unsigned *seen)
{
    const QuicFast *e = &ch->fast[ctx][b->acc >> (64 - QUIC_FAST_BITS)];
    if (QUIC_UNLIKELY(e->len == 0)) {
        unsigned l = ch->best[fam->bucket_of[ctx]];
        return quic_read_long_code(b, &fam->code[l], l, seen);
    }
    quic_consume(b, e->len);
    return e->value;
}

#endif
