/*
 * The QUIC bit reader (see quic_bits.h).
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md section 1.4), the behaviour checked against spice-common
 * common/quic.c; no code is taken from spice-common.
 */
#include "quic_bits.h"

#include <stdlib.h>

#include "quic.h"

int
quic_reader_open(QuicReader *r, const uint8_t *in, size_t in_len, unsigned bpc,
                 DecodeFailure *f)
{
    /* a partial last word is ignored, as spice-common does */
    size_t nwords = in_len / 4, k;
    memset(r, 0, sizeof *r);
    r->bits = malloc(nwords * 4 + QUIC_PAD);
    if (r->bits == NULL) {
        return fail(f, 0, "out of memory for a copy of %zu bytes", in_len);
    }
    for (k = 0; k < nwords; k++) {
        uint32_t w = __builtin_bswap32(get_u32le(in + 4 * k));
        memcpy(r->bits + 4 * k, &w, 4);
    }
    memset(r->bits + 4 * nwords, 0, QUIC_PAD);
    r->nwords = nwords;
    r->end_bit = (nwords - 1) * 32;
    r->in_len = in_len;
    r->bpc = bpc;
    r->f = f;
    r->b.at = QUIC_HEADER_SIZE;
    return 0;
}

void
quic_reader_close(QuicReader *r)
{
    free(r->bits);
    r->bits = NULL;
}

/*
 * spice-common's reader keeps a full 32-bit window loaded after every codeword, so a
 * stream is too short as soon as that window reaches past its last whole word: the
 * position passes 32 * (nwords - 1). Positions only grow, so checking now and then (and
 * at the end) fails exactly the streams spice-common fails.
 */
int
quic_reader_check(QuicReader *r)
{
    if (quic_bit_pos(&r->b) > r->end_bit) {
        return fail(r->f, r->in_len, "the stream ends before the image does (%zu whole words)",
                    r->nwords);
    }
    if (r->seen >> r->bpc) {
        return fail(r->f, quic_bit_pos(&r->b) / 32 * 4, "a codeword decodes past the %u"
                    " levels of a channel", 1u << r->bpc);
    }
    return 0;
}

/* A run of zeros shorter than the escape's, a one and l low bits; or the escape's zeros
 * and its suffix. */
unsigned
quic_read_long_code(QuicBits *b, const QuicCode *k, unsigned l, unsigned *seen)
{
    uint32_t win = (uint32_t)(b->acc >> 32);
    unsigned v, len;
    if (win > k->gr_limit) {
        unsigned zeros = (unsigned)__builtin_clz(win);
        len = zeros + 1 + l;
        v = (zeros << l) | ((win >> (32 - len)) & ((1u << l) - 1));
    } else {
        len = k->esc_len;
        v = k->esc_base + (win >> (32 - len));   /* the escape's zeros are its top bits */
    }
    *seen |= v;
    quic_consume(b, len);
    return v;
}

/* One 1 bit per expected run (2^melclen pixels, the state growing after each), a 0, then
 * melclen bits of remainder; the state shrinks by one after. */
int
quic_read_run(QuicReader *r, QuicState *s, size_t *out)
{
    QuicBits *b = &r->b;
    size_t run = 0;
    for (;;) {
        quic_refill(b, r->bits);
        if (quic_bit_pos(b) > r->end_bit) {
            return quic_reader_check(r);   /* ones all the way: a hostile stream */
        }
        uint32_t win = (uint32_t)(b->acc >> 32);
        unsigned ones = (unsigned)__builtin_clz(~win | 0xffu);   /* at most 24 */
        for (unsigned k = 0; k < ones; k++) {
            run += (size_t)1 << s->melclen;
            if (s->melcstate < QUIC_MEL_STATES - 1) {
                s->melclen = quic_mel_len[++s->melcstate];
            }
        }
        if (run > ((size_t)1 << 30)) {
            *out = run;
            return 0;
        }
        if (ones < 24) {
            quic_consume(b, ones + 1);
            break;
        }
        quic_consume(b, 24);
    }
    if (s->melclen) {
        quic_refill(b, r->bits);
        run += (size_t)(b->acc >> (64 - s->melclen));
        quic_consume(b, s->melclen);
    }
    if (s->melcstate) {
        s->melclen = quic_mel_len[--s->melcstate];
    }
    *out = run;
    return 0;
}
