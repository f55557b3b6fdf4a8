/*
 * The adaptive model of QUIC (Spice's SFALIC-based lossless image codec): Golomb "family"
 * codes, buckets of contexts with code-length counters, the wait-mask schedule of model
 * updates and the run-length "melcode" states.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md section 1.4), the constants checked against spice-common
 * common/quic.c; no code is taken from spice-common.
 */
#ifndef ATP_CODECS_QUIC_MODEL_H
#define ATP_CODECS_QUIC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define QUIC_MAX_CODES 8      /* codes 0..bpc-1 of a family; counters per bucket */
#define QUIC_MAX_BUCKETS 8    /* 8 bpc: contexts 0, 1-2, 3-6, ..., 127-255 */
#define QUIC_CODE_LIMIT 26    /* longest codeword, in bits */
#define QUIC_WMI_MAX 6        /* the wait mask grows to 2^6 - 1 ... */
#define QUIC_WMI_NEXT 2048    /* ... one step per 2048 pixels coded with one state */
#define QUIC_MEL_STATES 32

/* The shape of the codewords of code l in a family. */
typedef struct {
    /* a 32-bit window above gr_limit starts a Golomb-Rice codeword (zeros, a one, l low
     * bits); otherwise an escape: its zeros, then esc_len - zeros bits added to esc_base */
    uint32_t gr_limit, esc_len, esc_base, esc_mask;
} QuicCode;

/* Codewords of up to QUIC_FAST_BITS bits decode by table: the next QUIC_FAST_BITS bits of
 * the stream index it; len 0 means a longer codeword (or one past the levels). */
#define QUIC_FAST_BITS 9
typedef struct {
    uint8_t len, value;
} QuicFast;

/* One Golomb family (5 or 8 bits per channel). */
typedef struct {
    unsigned bpc, levels, nbuckets;
    QuicCode code[QUIC_MAX_CODES];
    QuicFast fast[QUIC_MAX_CODES][1u << QUIC_FAST_BITS];
    /* code_len[value][l]: the codeword length of value under code l (model updates) */
    uint8_t code_len[256][QUIC_MAX_CODES];
    /* the bucket of a context (the previous pixel's value in the same channel) */
    uint8_t bucket_of[256];
} QuicFamily;

/* Both families: constant once built, shared by every decode (quic_py.c builds them once
 * per module). */
typedef struct {
    QuicFamily bpc8, bpc5;
} QuicTables;

typedef struct {
    uint32_t counters[QUIC_MAX_CODES];  /* summed codeword lengths per code */
} QuicBucket;

/* One channel's model: its buckets and the coded values of the row (the contexts). */
typedef struct {
    QuicBucket buckets[QUIC_MAX_BUCKETS];
    uint8_t best[QUIC_MAX_BUCKETS];   /* the code each bucket uses now */
    /* per context, the fast table of its bucket's code: one load instead of two on the
     * path from one value of the channel to the next (rewritten when a best code changes) */
    const QuicFast *fast[256];
    uint8_t *corr;                    /* width + 1 values; corr[0] is the one before pixel 0 */
} QuicChannel;

/* The schedule shared by the channels coded together (R, G, B share one; alpha and gray
 * have their own): random waits between model updates, the wait-mask index, the melcode. */
typedef struct {
    unsigned waitcnt, seed, wm_trigger, wmidx, wmileft;
    unsigned melcstate, melclen;      /* the expected run is 2^melclen pixels */
} QuicState;

extern const uint32_t quic_tabrand[256];
extern const uint8_t quic_mel_len[QUIC_MEL_STATES];
extern const uint16_t quic_wm_trigger[11];

void quic_tables_init(QuicTables *t);
void quic_channel_reset(QuicChannel *ch, const QuicFamily *fam);
void quic_state_reset(QuicState *s);

/* The next pseudo-random wait, masked by the current wait mask. */
static inline unsigned
quic_next_wait(QuicState *s, unsigned waitmask)
{
    s->seed = (s->seed + 1) & 255u;
    return quic_tabrand[s->seed] & waitmask;
}

static inline void
quic_next_wmi(QuicState *s)
{
    s->wmidx++;
    s->wm_trigger = quic_wm_trigger[s->wmidx < 10 ? s->wmidx : 10];
    s->wmileft = QUIC_WMI_NEXT;
}

/* Add value's codeword lengths to the bucket of context `ctx`, pick the shortest code (the
 * highest l among equals), and halve the counters once the best passes the trigger. */
static inline __attribute__((always_inline)) void
quic_update(const QuicFamily *fam, QuicChannel *ch, unsigned ctx, unsigned value,
            unsigned trigger, const unsigned bpc)
{
    unsigned b = fam->bucket_of[ctx];
    uint32_t *c = ch->buckets[b].counters;
    const uint8_t *len = fam->code_len[value];
    unsigned best = bpc - 1, l;
    uint32_t best_len = (c[best] += len[best]);
    for (l = bpc - 1; l-- > 0;) {
        uint32_t n = (c[l] += len[l]);
        if (n < best_len) {
            best = l;
            best_len = n;
        }
    }
    if (best != ch->best[b]) {
        /* bucket b holds contexts 2^b - 1 .. 2^(b+1) - 2, the last one up to the top */
        unsigned last = b == fam->nbuckets - 1 ? fam->levels - 1 : (2u << b) - 2;
        for (unsigned v = (1u << b) - 1; v <= last; v++) {
            ch->fast[v] = fam->fast[best];
        }
        ch->best[b] = (uint8_t)best;
    }
    if (best_len > trigger) {
        for (l = 0; l < bpc; l++) {
            c[l] >>= 1;
        }
    }
}

#endif
