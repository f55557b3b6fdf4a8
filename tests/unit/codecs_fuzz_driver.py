"""Fuzz driver for the C codecs, run by scripts/fuzz-codecs.sh under ASan + UBSan.

usage: python -m tests.unit.codecs_fuzz_driver PATH_TO_SANITIZED_SO [COUNT] [SEED]

Loads the sanitizer build of ``_codecs`` from PATH (not the installed one) and feeds it
COUNT mutated inputs, shared among the targets in ``tests/unit/fuzz/`` by weight: valid
streams from the test encoders and samples from the real server, bit-flipped, byte-set,
truncated, extended, spliced with each other and with header words set to edge values.
Every call must either decode or raise ``_codecs.Error`` (which the Python surface turns into
CodecError one-to-one); anything else fails the run, and the sanitizers abort the process on
any report. The closing line counts inputs per target.
"""


from __future__ import annotations

import importlib.machinery
import importlib.util
import random
import sys
import time
from types import ModuleType

from tests.unit.fuzz import targets


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
    chosen = targets()
    seeds = {t.name: t.seeds(rng) for t in chosen}
    corpus = [s for t in chosen for s, _ in seeds[t.name]]
    weights = [t.weight for t in chosen]
    tally = {t.name: [0, 0] for t in chosen}
    started = time.monotonic()
    for _ in range(count):
        target = rng.choices(chosen, weights)[0]
        stream, info = rng.choice(seeds[target.name])
        decoded = target.feed(mod, mutate(stream, corpus, rng), info, rng)
        tally[target.name][0 if decoded else 1] += 1
    took = time.monotonic() - started
    per = ", ".join(f"{name} {ok + bad} ({ok} decoded)" for name, (ok, bad) in tally.items())
    print(f"fuzz-codecs: {count} inputs in {took:.1f} s, seed {seed}: {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
