"""Test-only QUIC encoder, with the expected decode of what it encodes.

Written from the format facts (research display.md §1.4; the model's constants checked
against spice-common ``common/quic.c``), not from our C decoder: a stream of little-endian
u32 words filled most significant bit first; header magic "QUIC", version 0, type, width,
height; then, row by row, each channel value's prediction error (from the left pixel in the
first row, the upper one in the first column, (left + upper) / 2 elsewhere) folded to
0, 1, 2 ... and Golomb coded with the code its context's bucket chose so far. Contexts are
the previous coded value of the channel in the row; buckets hold 1, 2, 4 ... contexts; the
model is updated after pseudo-random waits whose mask grows every 2048 pixels. Below the
first row, where the row above repeats and the two pixels to the left are equal, a run
length ("melcode") codes the pixels that repeat the left one. RGB types share one schedule
for R, G, B; RGBA codes each row's alpha after its colours, with its own schedule.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

MAGIC = 0x43495551
GRAY, RGB16, RGB24, RGB32, RGBA = 1, 2, 3, 4, 5
ALL_TYPES = (GRAY, RGB16, RGB24, RGB32, RGBA)
CODE_LIMIT = 26
WMI_MAX = 6
WMI_NEXT = 2048

TABRAND = (
    0x02C57542, 0x35427717, 0x2F5A2153, 0x9244F155, 0x7BD26D07, 0x354C6052, 0x57329B28,
    0x2993868E, 0x6CD8808C, 0x147B46E0, 0x99DB66AF, 0xE32B4CAC, 0x1B671264, 0x9D433486,
    0x62A4C192, 0x06089A4B, 0x9E3DCE44, 0xDAABEE13, 0x222425EA, 0xA46F331D, 0xCD589250,
    0x8BB81D7F, 0xC8B736B9, 0x35948D33, 0xD7AC7FD0, 0x5FBE2803, 0x2CFBC105, 0x013DBC4E,
    0x7A37820F, 0x39F88E9E, 0xEDD58794, 0xC5076689, 0xFCADA5A4, 0x64C2F46D, 0xB3BA3243,
    0x8974B4F9, 0x5A05AEBD, 0x20AFCD00, 0x39E2B008, 0x88A18A45, 0x600BDE29, 0xF3971ACE,
    0xF37B0A6B, 0x7041495B, 0x70B707AB, 0x06BEFFBB, 0x4206051F, 0xE13C4EE3, 0xC1A78327,
    0x91AA067C, 0x8295F72A, 0x732917A6, 0x1D871B4D, 0x4048F136, 0xF1840E7E, 0x6A6048C1,
    0x696CB71A, 0x7FF501C3, 0x0FC6310B, 0x57E0F83D, 0x8CC26E74, 0x11A525A2, 0x946934C7,
    0x7CD888F0, 0x8F9D8604, 0x4F86E73B, 0x04520316, 0xDEEEA20C, 0xF1DEF496, 0x67687288,
    0xF540C5B2, 0x22401484, 0x3478658A, 0xC2385746, 0x01979C2C, 0x5DAD73C8, 0x0321F58B,
    0xF0FEDBEE, 0x92826DDF, 0x284BEC73, 0x5B1A1975, 0x03DF1E11, 0x20963E01, 0xA17CF12B,
    0x740D776E, 0xA7A6BF3C, 0x01B5CCE4, 0x1118AA76, 0xFC6FAC0A, 0xCE927E9B, 0x00BF2567,
    0x806F216C, 0xBCA69056, 0x795BD3E9, 0xC9DC4557, 0x8929B6C2, 0x789D52EC, 0x3F3FBF40,
    0xB9197368, 0xA38C15B5, 0xC3B44FA8, 0xCA8333B0, 0xB7E8D590, 0xBE807FEB, 0xBF5F8360,
    0xD99E2F5C, 0x372928E1, 0x7C757C4C, 0x0DB5B154, 0xC01EDE02, 0x1FC86E78, 0x1F3985BE,
    0xB4805C77, 0x00C880FA, 0x974C1B12, 0x35AB0214, 0xB2DC840D, 0x5B00AE37, 0xD313B026,
    0xB260969D, 0x7F4C8879, 0x1734C4D3, 0x49068631, 0xB9F6A021, 0x6B863E6F, 0xCEE5DEBF,
    0x29F8C9FB, 0x53DD6880, 0x72B61223, 0x1F67A9FD, 0x0A0F6993, 0x13E59119, 0x11CCA12E,
    0xFE6B6766, 0x16B6EFFC, 0x97918FC4, 0xC2B8A563, 0x94F2F741, 0x0BFA8C9A, 0xD1537AE8,
    0xC1DA349C, 0x873C60CA, 0x95005B85, 0x9B5C080E, 0xBC8ABBD9, 0xE1EAB1D2, 0x6DAC9070,
    0x4EA9EBF1, 0xE0CF30D4, 0x1EF5BD7B, 0xD161043E, 0x5D2FA2E2, 0xFF5D3CAE, 0x86ED9F87,
    0x2AA1DAA1, 0xBD731A34, 0x9E8F4B22, 0xB1C2C67A, 0xC21758C9, 0xA182215D, 0xCCB01948,
    0x8D168DF7, 0x04238CFE, 0x368C3DBC, 0x0AEADCA5, 0xBAD21C24, 0x0A71FEE5, 0x9FC5D872,
    0x54C152C6, 0xFC329483, 0x6783384A, 0xEDDB3E1C, 0x65F90E30, 0x884AD098, 0xCE81675A,
    0x4B372F7D, 0x68BF9A39, 0x43445F1E, 0x40F8D8CB, 0x90D5ACB6, 0x4CD07282, 0x349EEB06,
    0x0C9D5332, 0x520B24EF, 0x80020447, 0x67976491, 0x2F931CA3, 0xFE9B0535, 0xFCD30220,
    0x61A9E6CC, 0xA487D8D7, 0x3F7C5DD1, 0x7D0127C5, 0x48F51D15, 0x60DEA871, 0xC9A91CB7,
    0x58B53BB3, 0x9D5E0B2D, 0x624A78B4, 0x30DBEE1B, 0x9BDF22E7, 0x1DF5C299, 0x2D5643A7,
    0xF4DD35FF, 0x03CA8FD6, 0x53B47ED8, 0x6F2C19AA, 0xFEB0C1F4, 0x49E54438, 0x2F2577E6,
    0xBF876969, 0x72440EA9, 0xFA0BAFB8, 0x74F5B3A0, 0x7DD357CD, 0x89CE1358, 0x6EF2CDDA,
    0x1E7767F3, 0xA6BE9FDB, 0x4F5F88F8, 0xBA994A3A, 0x08CA6B65, 0xE0893818, 0x9E00A16A,
    0xF42BFC8F, 0x9972EEDC, 0x749C8B51, 0x32C05F5E, 0xD706805F, 0x6BFBB7CF, 0xD9210A10,
    0x31A1DB97, 0x923A9559, 0x37A7A1F6, 0x059F8861, 0xCA493E62, 0x65157E81, 0x8F6467DD,
    0xAB85FF9F, 0x9331AFF2, 0x8616B9F5, 0xEDBD5695, 0xEE7E29B1, 0x313AC44F, 0xB903112F,
    0x432EF649, 0xDC0A36C0, 0x61CF2BBA, 0x81474925, 0xA8B6C7AD, 0xEE5931DE, 0xB2F8158D,
    0x59FB7409, 0x2E3DFAED, 0x9AF25A3F, 0xE1FED4D5,
)  # fmt: skip
MEL_LEN = (0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
           4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15)  # fmt: skip
WM_TRIGGER = (110, 550, 900, 800, 550, 400, 350, 250, 140, 160, 140)


@dataclass
class Coverage:
    """What the encoder exercised (tests assert the suite reaches every part of the model)."""

    buckets: set[tuple[int, int]] = field(default_factory=set)  # (bpc, bucket)
    codes: set[tuple[int, int, bool]] = field(default_factory=set)  # (bpc, code k, escape)
    max_wmidx: int = 0
    max_melcstate: int = 0
    runs: int = 0
    halvings: int = 0


class Family:
    """Golomb codes for one depth: Golomb-Rice words below a limit, escapes above."""

    def __init__(self, bpc: int) -> None:
        self.bpc = bpc
        self.mask = (1 << bpc) - 1
        self.base: list[int] = []  # values below this are Golomb-Rice coded
        self.esc_len: list[int] = []
        for k in range(bpc):
            zeros = min(CODE_LIMIT - bpc, (1 << (bpc - k)) - 1)
            base = zeros << k
            self.base.append(base)
            self.esc_len.append(zeros + ((1 << bpc) - base - 1).bit_length())
        self.nbuckets = 8 if bpc == 8 else 5

    def code(self, n: int, k: int) -> tuple[int, int]:
        """(codeword, length) of value n under code k."""
        if n < self.base[k]:
            return (1 << k) | (n & ((1 << k) - 1)), (n >> k) + k + 1
        return n - self.base[k], self.esc_len[k]

    def bucket(self, ctx: int) -> int:
        return min((ctx + 1).bit_length() - 1, self.nbuckets - 1)

    def fold(self, delta: int) -> int:
        """Prediction error (mod 2^bpc) -> 0, 1, 2 ... for 0, -1, +1, -2 ..."""
        s = delta & self.mask
        return s << 1 if s <= self.mask >> 1 else ((self.mask - s) << 1) + 1


class BitWriter:
    def __init__(self) -> None:
        self.words: list[int] = []
        self.acc = 0
        self.nbits = 0

    def put(self, word: int, length: int) -> None:
        self.acc = (self.acc << length) | word
        self.nbits += length
        while self.nbits >= 32:
            self.nbits -= 32
            self.words.append(self.acc >> self.nbits)
            self.acc &= (1 << self.nbits) - 1

    def finish(self) -> bytes:
        if self.nbits:
            self.put(0, 32 - self.nbits)
        # spice-common's encoder ends with one more (zero) word: the decoder's 32-bit
        # window must fit in the stream after the last codeword
        self.words.append(0)
        return struct.pack(f"<{len(self.words)}I", *self.words)


class Schedule:
    """Waits between model updates, the wait-mask index and the melcode state."""

    def __init__(self) -> None:
        self.waitcnt = 0
        self.seed = 0xFF
        self.wmidx = 0
        self.wmileft = WMI_NEXT
        self.trigger = WM_TRIGGER[0]
        self.melcstate = 0

    def rand(self, waitmask: int) -> int:
        self.seed = (self.seed + 1) & 0xFF
        return TABRAND[self.seed] & waitmask


class Channel:
    def __init__(self, fam: Family, width: int) -> None:
        self.counters = [[0] * fam.bpc for _ in range(fam.nbuckets)]
        self.best = [fam.bpc - 1] * fam.nbuckets
        self.corr = [0] * (width + 1)  # corr[x + 1]: coded value of pixel x; corr[0]: before 0


class Encoder:
    def __init__(self, bpc: int, width: int, cov: Coverage) -> None:
        self.fam = Family(bpc)
        self.width = width
        self.out = BitWriter()
        self.cov = cov

    def code(self, ch: Channel, x: int, value: int) -> None:
        fam = self.fam
        b = fam.bucket(ch.corr[x])
        k = ch.best[b]
        ch.corr[x + 1] = value
        word, length = fam.code(value, k)
        self.cov.buckets.add((fam.bpc, b))
        self.cov.codes.add((fam.bpc, k, value >= fam.base[k]))
        self.out.put(word, length)

    def update(self, sched: Schedule, ch: Channel, x: int) -> None:
        fam = self.fam
        counters = ch.counters[fam.bucket(ch.corr[x])]
        value = ch.corr[x + 1]
        best, best_len = fam.bpc - 1, 0
        for k in range(fam.bpc - 1, -1, -1):
            counters[k] += fam.code(value, k)[1]
            if k == fam.bpc - 1 or counters[k] < best_len:
                best, best_len = k, counters[k]
        ch.best[fam.bucket(ch.corr[x])] = best
        if best_len > sched.trigger:
            self.cov.halvings += 1
            for k in range(fam.bpc):
                counters[k] >>= 1

    def run(self, sched: Schedule, length: int) -> None:
        hits = 0
        while length >= 1 << MEL_LEN[sched.melcstate]:
            hits += 1
            length -= 1 << MEL_LEN[sched.melcstate]
            sched.melcstate = min(sched.melcstate + 1, len(MEL_LEN) - 1)
        self.cov.max_melcstate = max(self.cov.max_melcstate, sched.melcstate)
        self.cov.runs += 1
        for _ in range(hits):
            self.out.put(1, 1)
        self.out.put(length, MEL_LEN[sched.melcstate] + 1)  # a 0, then the remainder
        if sched.melcstate:
            sched.melcstate -= 1

    def pixel(self, chans: Sequence[Channel], cur: Sequence[tuple[int, ...]],
              prev: Sequence[tuple[int, ...]] | None, x: int) -> None:
        fam = self.fam
        for c, ch in enumerate(chans):
            if prev is None:
                pred = cur[x - 1][c] if x else 0
            elif x == 0:
                pred = prev[0][c]
            else:
                pred = (cur[x - 1][c] + prev[x][c]) >> 1
            self.code(ch, x, fam.fold(cur[x][c] - pred))

    def segment(self, sched: Schedule, chans: Sequence[Channel], cur: Sequence[tuple[int, ...]],
                prev: Sequence[tuple[int, ...]] | None, i: int, end: int) -> None:
        waitmask = (1 << sched.wmidx) - 1

        def update_all(x: int) -> None:
            for ch in chans:
                self.update(sched, ch, x)

        if i == 0:
            self.pixel(chans, cur, prev, 0)
            if sched.waitcnt:
                sched.waitcnt -= 1
            else:
                sched.waitcnt = sched.rand(waitmask)
                update_all(0)
            i = 1
        stopidx = i + sched.waitcnt
        run_index = 0

        def starts_run(x: int) -> bool:
            return (prev is not None and prev[x - 1] == prev[x] and run_index != x and x > 2
                    and cur[x - 1] == cur[x - 2])

        while True:
            in_run = False
            while stopidx < end and not in_run:
                while i <= stopidx:
                    if starts_run(i):
                        in_run = True
                        break
                    self.pixel(chans, cur, prev, i)
                    i += 1
                if not in_run:
                    update_all(stopidx)
                    stopidx = i + sched.rand(waitmask)
            while not in_run and i < end:
                if starts_run(i):
                    in_run = True
                    break
                self.pixel(chans, cur, prev, i)
                i += 1
            if not in_run:
                sched.waitcnt = stopidx - end
                return
            run_index = i
            sched.waitcnt = stopidx - i
            length = 0
            while cur[i] == cur[i - 1]:
                length += 1
                i += 1
                if i == end:
                    self.run(sched, length)
                    return
            self.run(sched, length)
            stopidx = i + sched.waitcnt

    def row(self, sched: Schedule, chans: Sequence[Channel], cur: Sequence[tuple[int, ...]],
            prev: Sequence[tuple[int, ...]] | None) -> None:
        for ch in chans:
            ch.corr[0] = ch.corr[1] if prev is not None else 0
        pos, left = 0, self.width
        while sched.wmidx < WMI_MAX and sched.wmileft <= left:
            self.segment(sched, chans, cur, prev, pos, pos + sched.wmileft)
            pos += sched.wmileft
            left -= sched.wmileft
            sched.wmidx += 1
            sched.trigger = WM_TRIGGER[sched.wmidx]
            sched.wmileft = WMI_NEXT
        if left:
            self.segment(sched, chans, cur, prev, pos, pos + left)
            if sched.wmidx < WMI_MAX:
                sched.wmileft -= left
        self.cov.max_wmidx = max(self.cov.max_wmidx, sched.wmidx)


Pixel = tuple[int, ...]


def encode(qtype: int, rows: Sequence[Sequence[Pixel]], cov: Coverage | None = None) -> bytes:
    """A QUIC stream of ``rows`` of channel tuples: (r, g, b) 8-bit, 5-bit for RGB16,
    (r, g, b, a) for RGBA, (v,) for GRAY."""
    height, width = len(rows), len(rows[0])
    cov = cov if cov is not None else Coverage()
    enc = Encoder(5 if qtype == RGB16 else 8, width, cov)
    for word in (MAGIC, 0, qtype, width, height):
        enc.out.put(word, 32)
    color, alpha = Schedule(), Schedule()
    nch = 1 if qtype == GRAY else 3
    chans = [Channel(enc.fam, width) for _ in range(nch)]
    achan = [Channel(enc.fam, width)]
    prev_rgb: list[Pixel] | None = None
    prev_a: list[Pixel] | None = None
    for y in range(height):
        cur_rgb = [p[:nch] for p in rows[y]]
        enc.row(color, chans, cur_rgb, prev_rgb)
        prev_rgb = cur_rgb
        if qtype == RGBA:
            cur_a = [p[3:4] for p in rows[y]]
            enc.row(alpha, achan, cur_a, prev_a)
            prev_a = cur_a
    return enc.out.finish()


def widen5(v: int) -> int:
    return (v << 3) | (v >> 2)


def expected_pixels(qtype: int, rows: Sequence[Sequence[Pixel]]) -> bytes:
    """What the decoder must produce: B, G, R, X per pixel, rows top-down."""
    out = bytearray()
    for row in rows:
        for p in row:
            if qtype == GRAY:
                out += bytes((p[0], p[0], p[0], 0))
            elif qtype == RGB16:
                out += bytes((widen5(p[2]), widen5(p[1]), widen5(p[0]), 0))
            else:
                out += bytes((p[2], p[1], p[0], p[3] if qtype == RGBA else 0))
    return bytes(out)


# --- content ------------------------------------------------------------------------------

Content = Callable[[int, int, int, int, random.Random], list[list[Pixel]]]


def _nch(qtype: int) -> int:
    return {GRAY: 1, RGBA: 4}.get(qtype, 3)


def flat(qtype: int, width: int, height: int, depth: int, rng: random.Random) -> list[list[Pixel]]:
    p = tuple(rng.randrange(1 << depth) for _ in range(_nch(qtype)))
    return [[p] * width for _ in range(height)]


def gradient(qtype: int, width: int, height: int, depth: int,
             rng: random.Random) -> list[list[Pixel]]:
    steps = [(rng.randint(-3, 3), rng.randint(-3, 3), rng.randrange(1 << depth))
             for _ in range(_nch(qtype))]
    m = (1 << depth) - 1
    return [[tuple((o + dx * x + dy * y) & m for dx, dy, o in steps) for x in range(width)]
            for y in range(height)]


def noise(qtype: int, width: int, height: int, depth: int,
          rng: random.Random) -> list[list[Pixel]]:
    n = _nch(qtype)
    return [[tuple(rng.randrange(1 << depth) for _ in range(n)) for _ in range(width)]
            for _ in range(height)]


def photo(qtype: int, width: int, height: int, depth: int,
          rng: random.Random) -> list[list[Pixel]]:
    """Smooth shading plus a little noise: the middle codes (l 2..5) of the family."""
    n = _nch(qtype)
    m = (1 << depth) - 1
    k = [(rng.randint(1, 7), rng.randint(1, 7), rng.randrange(1 << depth)) for _ in range(n)]
    spread = max(1, m // 16)
    return [[tuple((o + (x * a + y * b) // 4 + rng.randint(-spread, spread)) & m
                   for a, b, o in k) for x in range(width)] for y in range(height)]


def text(qtype: int, width: int, height: int, depth: int,
         rng: random.Random) -> list[list[Pixel]]:
    """A flat background with short strokes in two ink colours, lines of "glyphs"."""
    n = _nch(qtype)
    bg = tuple(rng.randrange(1 << depth) for _ in range(n))
    inks = [tuple(rng.randrange(1 << depth) for _ in range(n)) for _ in range(2)]
    rows = [[bg] * width for _ in range(height)]
    for _ in range(width * height // 12 + 1):
        x, y = rng.randrange(width), rng.randrange(height)
        ink = rng.choice(inks)
        for k in range(rng.randint(1, 4)):
            if rng.random() < 0.5 and x + k < width:
                rows[y][x + k] = ink
            elif y + k < height:
                rows[y + k][x] = ink
    return rows


def runs(qtype: int, width: int, height: int, depth: int,
         rng: random.Random) -> list[list[Pixel]]:
    """Rows of long stripes, each row mostly repeating the one above: long melcode runs."""
    n = _nch(qtype)
    colors = [tuple(rng.randrange(1 << depth) for _ in range(n)) for _ in range(3)]
    rows: list[list[Pixel]] = []
    for y in range(height):
        if y and rng.random() < 0.7:
            rows.append(list(rows[-1]))
            continue
        row: list[Pixel] = []
        while len(row) < width:
            row += [rng.choice(colors)] * rng.randint(1, max(1, width // 2))
        rows.append(row[:width])
    return rows


CONTENTS: dict[str, Content] = {
    "flat": flat, "gradient": gradient, "photo": photo, "noise": noise, "text": text,
    "runs": runs,
}


@dataclass(frozen=True)
class QuicCase:
    qtype: int
    width: int
    height: int
    stream: bytes
    expected: bytes


def quic_case(qtype: int, width: int, height: int, content: str, rng: random.Random,
              cov: Coverage | None = None) -> QuicCase:
    rows = CONTENTS[content](qtype, width, height, 5 if qtype == RGB16 else 8, rng)
    return QuicCase(qtype, width, height, encode(qtype, rows, cov), expected_pixels(qtype, rows))
