"""Fuzz driver for the C codecs, run by scripts/fuzz-codecs.sh under ASan + UBSan.

usage: python -m tests.unit.codecs_fuzz_driver PATH_TO_SANITIZED_SO [COUNT] [SEED]

Loads the sanitizer build of ``_codecs`` from PATH (not the installed one) and feeds it
COUNT mutated inputs: valid LZ streams and BITMAP data from the test encoder, bit-flipped,
byte-set, truncated, extended and spliced with each other. Every call must either decode
or raise ``_codecs.Error`` (which the Python surface turns into CodecError one-to-one);
anything else fails the run, and the sanitizers abort the process on any report.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import random
import sys
import time
from types import ModuleType

from tests.unit.codec_streams import ALL_LZ_TYPES, lz_case


def load(path: str) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader("_codecs", path)
    spec = importlib.util.spec_from_file_location("_codecs", path, loader=loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def mutate(data: bytes, corpus: list[bytes], rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 8))):
        op = rng.randrange(6)
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.choice((0, 1, 0x1F, 0x20, 0x3F, 0xE0, 0xFF))
        elif op == 2:
            del buf[rng.randrange(len(buf) + 1) :]
        elif op == 3:
            buf += bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 16)))
        elif op == 4:
            other = rng.choice(corpus)
            cut = rng.randrange(len(buf) + 1)
            buf[cut:] = other[rng.randrange(len(other) + 1) :]
        elif op == 5 and len(buf) >= 28:
            # a header word (type, width, height, stride) set to an edge value
            word = rng.randrange(2, 7) * 4
            buf[word : word + 4] = rng.choice(
                (b"\0\0\0\0", b"\0\0\0\1", b"\xff\xff\xff\xff", b"\0\0\x01\0", b"\x7f\xff\xff\xff")
            )
    return bytes(buf)


def main() -> int:
    path = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    mod = load(path)
    rng = random.Random(seed)
    cases = [
        lz_case(t, rng.choice((1, 2, 5, 9, 16, 33)), rng.choice((1, 2, 3, 7)), rng.random() < 0.5,
                rng)
        for t in ALL_LZ_TYPES
        for _ in range(6)
    ]
    corpus = [c.stream for c in cases]
    palettes = [None, b"", b"\x01\x02\x03\x00" * 2, bytes(range(256)) * 4]
    started = time.monotonic()
    ok = bad = 0
    for i in range(count):
        case = rng.choice(cases)
        data = mutate(case.stream, corpus, rng)
        palette = rng.choice(palettes) if rng.random() < 0.3 else (
            b"".join(p.to_bytes(4, "little") for p in case.palette) if case.palette else None)
        if i % 4 == 3:
            # BITMAP: mutated bytes reinterpreted as pixels with random geometry
            fmt = rng.randrange(0, 12)
            width, height = rng.randrange(0, 40), rng.randrange(0, 12)
            stride = rng.randrange(0, 170)
            out = None if rng.random() < 0.5 else bytearray(rng.randrange(0, 4 * 40 * 12))
            try:
                mod.bitmap_decode(fmt, data, width, height, stride, rng.random() < 0.5, palette,
                                  out, rng.choice((0, 0, 4 * width + 4, 3)))
                ok += 1
            except mod.Error:
                bad += 1
            continue
        out_stride = rng.choice((0, 0, 0, case.width * 4 + 8, 5))
        out = None
        if rng.random() < 0.5:
            out = bytearray(rng.choice((len(case.expected), len(case.expected) + 64,
                                        max(0, len(case.expected) - 4), 4096)))
        try:
            mod.lz_decode(data, out, out_stride, palette)
            ok += 1
        except mod.Error:
            bad += 1
    took = time.monotonic() - started
    print(f"fuzz-codecs: {count} inputs ({ok} decoded, {bad} CodecError) in {took:.1f} s,"
          f" seed {seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
