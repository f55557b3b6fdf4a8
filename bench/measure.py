"""Shared helpers of the benchmarks: timing, percentiles, interleaving, and the JSON line.

Speed is measured, never asserted: a benchmark prints ``ours``, the raw ``anchor`` it measured
in the same run, and their ratio, and leaves judging them to whoever reads the figures.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence

NS_PER_MS = 1_000_000


def is_quick() -> bool:
    """``--quick`` on the command line or ``ATP_BENCH_QUICK=1``: fewer iterations (smoke tests)."""
    return "--quick" in sys.argv[1:] or os.environ.get("ATP_BENCH_QUICK") == "1"


def iterations(normal: int, quick: int) -> int:
    return quick if is_quick() else normal


def timed(fn: Callable[[], object]) -> int:
    """Wall time of one call of ``fn``, in nanoseconds."""
    start = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - start


def sample(fn: Callable[[], object], n: int) -> list[int]:
    return [timed(fn) for _ in range(n)]


def interleave(
    a: Callable[[], object], b: Callable[[], object], n: int
) -> tuple[list[int], list[int]]:
    """Time ``n`` calls of each of ``a`` and ``b``, alternating in ABBA order.

    Alternating spreads slow drift (a busy host, a warming cache) over both equally, and
    swapping who goes first each round cancels any advantage of running right after the other.
    """
    times_a: list[int] = []
    times_b: list[int] = []
    for i in range(n):
        if i % 2 == 0:
            times_a.append(timed(a))
            times_b.append(timed(b))
        else:
            times_b.append(timed(b))
            times_a.append(timed(a))
    return times_a, times_b


def percentile(samples: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100), interpolating linearly between closest ranks.

    This is Hyndman & Fan's type 7 (numpy's default): p=50 is the usual median, p=0 and
    p=100 the minimum and maximum.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0..100")
    xs = sorted(samples)
    rank = (len(xs) - 1) * p / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def ms(ns: float) -> float:
    return ns / NS_PER_MS


def emit(name: str, ours: float, anchor: float, unit: str = "ms", **extra: object) -> None:
    """Print one figure as a JSON line on stdout: ``ratio`` is ``ours / anchor``."""
    if not (anchor > 0 and math.isfinite(anchor) and math.isfinite(ours)):
        raise ValueError(f"{name}: cannot form a ratio of {ours} over {anchor}")
    line = {"name": name, "ours": ours, "anchor": anchor, "ratio": ours / anchor, "unit": unit}
    if clash := line.keys() & extra.keys():
        raise ValueError(f"{name}: extra keys {sorted(clash)} would overwrite the figure")
    print(json.dumps({**line, **extra}), flush=True)
