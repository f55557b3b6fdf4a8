"""Fuzz targets for the C codecs, one module per codec (run by ``tests.unit.codecs_fuzz_driver``).

A target is a :class:`FuzzTarget`: the seeds it mutates (valid streams from the test encoders
and the golden samples captured from the real server) and how to feed one mutated input to
the sanitizer build of ``_codecs``. Adding a codec: write ``fuzz/<codec>.py`` with a
``TARGET`` and list it in :data:`TARGET_MODULES`.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

#: Called with (sanitized _codecs module, mutated bytes, the seed it came from, rng); returns
#: True when the input decoded, False when it raised ``_codecs.Error``. Anything else escapes.
Feed = Callable[[ModuleType, bytes, object, random.Random], bool]


@dataclass(frozen=True)
class FuzzTarget:
    name: str
    #: how many of each 100 inputs go to this target
    weight: int
    #: the seeds: (stream bytes, whatever the feed needs to know about it)
    seeds: Callable[[random.Random], list[tuple[bytes, object]]]
    feed: Feed


TARGET_MODULES = ("lz", "bitmap", "lz4", "glz", "quic", "raster")


def targets() -> list[FuzzTarget]:
    mods: list[ModuleType] = [
        importlib.import_module(f"tests.unit.fuzz.{name}") for name in TARGET_MODULES
    ]
    return [m.TARGET for m in mods]
